// The whole-image check of a lazy image's complete copy, on a real file.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { checkCopy } from "../../../runtime/copy-check.ts";
import { tempDir } from "../../support/temp-dir.ts";

const where = { url: "http://o/os.raw", dest: "/run/machines/os.raw", temp: "/run/machines/.#os.raw.1234" };

test("a copy is checked against the hash verify= expects: a match says so, a mismatch is loud and keeps it from DEST", async () => {
  const path = join(tempDir("netimport-copy-check-"), "copy");
  const bytes = randomBytes((9 << 20) + 123); // more than two 4 MiB pieces, and an odd tail
  writeFileSync(path, bytes);
  const file = await open(path, "r");
  try {
    const hash = createHash("sha256").update(bytes).digest("hex");
    assert.deepEqual(await checkCopy(file, bytes.length, undefined, where), { verified: true });
    assert.deepEqual(await checkCopy(file, bytes.length, { hash, source: "http://o/SHA256SUMS" }, where),
      { verified: true, line: `the copy matches http://o/SHA256SUMS (sha256 ${hash})` });
    const other = createHash("sha256").update("another image").digest("hex");
    const mismatch = await checkCopy(file, bytes.length, { hash: other, source: "--verify=sha256:" }, where);
    assert.equal(mismatch.verified, false);
    assert.equal(mismatch.line, `WARNING: checksum mismatch for http://o/os.raw: got sha256 ${hash}, --verify=sha256: says ${other}: ` +
      "the complete copy is NOT the image that was published; it is left at /run/machines/.#os.raw.1234 instead of /run/machines/os.raw, and dm-verity goes on checking every block read");
    await assert.rejects(checkCopy(file, bytes.length + 1, { hash, source: "x" }, where), /the copy ends at byte 9437307 of 9437308/);
  } finally {
    await file.close();
  }
});
