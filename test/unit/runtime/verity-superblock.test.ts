// The superblock `veritysetup format` writes, read back and compared with `veritysetup dump`; the table
// built from it; and every superblock refused.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseVeritySuperblock } from "../../../runtime/verity-superblock.ts";
import { checkRootHash, verityTable } from "../../../runtime/verity-table.ts";
import { formatVerity, makeFs, makeTree } from "./ddi-fixtures.ts";

let dir: string;
let data: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "netimport-verity-sb-"));
  data = makeFs(join(dir, "data.erofs"), makeTree(join(dir, "tree"), { "a.txt": "a" }, 64 * 1024), "erofs");
});
after(() => rmSync(dir, { recursive: true, force: true }));

function dump(hash: string): Record<string, string> {
  const out = execFileSync("veritysetup", ["dump", hash], { encoding: "utf8" });
  return Object.fromEntries(out.split("\n").map((l) => l.split(/:\s*/, 2).map((s) => s.trim())).filter((p) => p.length === 2));
}

describe("parseVeritySuperblock", () => {
  test("reads what veritysetup format wrote (defaults: sha256, 4096-byte blocks, 32-byte salt)", () => {
    const hash = join(dir, "default.verity");
    formatVerity(data, hash);
    const sb = parseVeritySuperblock(readFileSync(hash), hash);
    const d = dump(hash);
    assert.deepEqual(
      [sb.hashType, sb.uuid, sb.algorithm, sb.dataBlockSize, sb.hashBlockSize, sb.dataBlocks, sb.salt.toString("hex"), sb.hashStartBlock],
      [Number(d["Hash type"]), d["UUID"], d["Hash algorithm"], Number(d["Data block size"]), Number(d["Hash block size"]), Number(d["Data blocks"]), d["Salt"], 1],
    );
  });

  test("other parameters: sha512, 1024-byte hash blocks (the tree then starts at block 1), no salt, hash type 0", () => {
    const hash = join(dir, "other.verity");
    formatVerity(data, hash, ["--hash=sha512", "--hash-block-size=1024", "--data-block-size=1024", "--salt=-", "--format=0"]);
    const sb = parseVeritySuperblock(readFileSync(hash), hash);
    assert.deepEqual([sb.algorithm, sb.hashBlockSize, sb.dataBlockSize, sb.salt.length, sb.hashType, sb.hashStartBlock], ["sha512", 1024, 1024, 0, 0, 1]);
    const sb512 = parseVeritySuperblock(readFileSync((formatVerity(data, join(dir, "b512.verity"), ["--hash-block-size=512"]), join(dir, "b512.verity"))), "x");
    assert.equal(sb512.hashStartBlock, 1);
  });

  test("refuses a hash device that is no verity superblock, or one it cannot use", () => {
    const hash = join(dir, "default.verity");
    const good = readFileSync(hash);
    const broken = (edit: (b: Buffer) => void, message: RegExp) => {
      const b = Buffer.from(good.subarray(0, 512));
      edit(b);
      assert.throws(() => parseVeritySuperblock(b, "hash device /run/x.hash"), (e: Error) => e.name === "VeritySuperblockError" && message.test(e.message));
    };
    broken((b) => b.write("ext4", 0), /hash device \/run\/x\.hash has no verity superblock \(made by veritysetup format\)/);
    broken((b) => b.writeUInt32LE(2, 8), /superblock version 2 is not supported/);
    broken((b) => b.writeUInt32LE(7, 12), /hash type 7 is not supported/);
    broken((b) => b.write("md5\0\0\0", 32, "latin1"), /hash algorithm 'md5' is not supported/);
    broken((b) => b.writeUInt32LE(3000, 64), /block sizes 3000\/4096 are invalid/);
    broken((b) => b.writeUInt32LE(1 << 20, 68), /block sizes 4096\/1048576 are invalid/);
    broken((b) => b.writeBigUInt64LE(0n, 72), /claims 0 data blocks/);
    broken((b) => b.writeUInt16LE(257, 80), /salt of 257 bytes/);
    assert.throws(() => parseVeritySuperblock(good.subarray(0, 100), "h"), /too small to hold a verity superblock/);
  });
});

describe("verityTable", () => {
  test("the kernel's verity target line, with the salt or '-'", () => {
    const sb = parseVeritySuperblock(readFileSync(join(dir, "default.verity")), "h");
    const rootHash = "AB".repeat(32);
    assert.equal(
      verityTable({ dataDevice: "/dev/loop0", hashDevice: "/dev/loop1", superblock: sb, rootHash }),
      `0 ${(sb.dataBlocks * 4096) / 512} verity 1 /dev/loop0 /dev/loop1 4096 4096 ${sb.dataBlocks} 1 sha256 ${"ab".repeat(32)} ${sb.salt.toString("hex")}`,
    );
    const unsalted = { ...sb, salt: Buffer.alloc(0) };
    assert.match(verityTable({ dataDevice: "/dev/loop0", hashDevice: "/dev/loop1", superblock: unsalted, rootHash }), / -$/);
    assert.throws(() => verityTable({ dataDevice: "/dev/a b", hashDevice: "/dev/loop1", superblock: sb, rootHash }), /cannot go into a device-mapper table/);
  });

  test("the root hash must be hex of the algorithm's digest size", () => {
    assert.equal(checkRootHash("AB".repeat(32), "sha256"), "ab".repeat(32));
    assert.equal(checkRootHash("ab".repeat(64), "sha512"), "ab".repeat(64));
    assert.throws(() => checkRootHash("ab".repeat(20), "sha256"), (e: Error) => e.name === "RootHashFormatError" && /is not 64 hexadecimal digits, the size of a sha256 digest/.test(e.message));
    assert.throws(() => checkRootHash("zz".repeat(32), "sha256"), { name: "RootHashFormatError" });
  });
});
