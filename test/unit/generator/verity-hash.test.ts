// roothash=/usrhash= values: what systemd would accept for a DDI's dm-verity tree, and nothing else.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rootHash } from "../../../generator/verity-hash.ts";

test("SHA-256 to SHA-512 root hashes are accepted, in lower case", () => {
  assert.equal(rootHash("ab".repeat(32)), "ab".repeat(32));
  assert.equal(rootHash("AB".repeat(48)), "ab".repeat(48));
  assert.equal(rootHash("0f".repeat(64)), "0f".repeat(64));
});

test("too short, too long, odd or not hex: refused, as unhexmem() and cryptsetup refuse them", () => {
  for (const bad of ["", "ab".repeat(31), `${"ab".repeat(32)}a`, "ab".repeat(65), `${"ab".repeat(31)}zz`, `${"ab".repeat(32)} `, `0x${"ab".repeat(32)}`, `${"ab".repeat(32)}\n`]) {
    assert.equal(rootHash(bad), undefined, JSON.stringify(bad));
  }
});
