import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import { createSparseFileSink } from "../../../runtime/sparse-file-sink.ts";

const MIB = 1024 * 1024;
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

/** Feeds `data` in pieces of varying, unaligned sizes. */
function* pieces(data: Buffer): Generator<Buffer> {
  const sizes = [1, 4095, 65536, 777, 3 * MIB + 5, 12345];
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield data.subarray(at, at + n);
    at += n;
  }
}

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), "netimport-sparse-")); });
after(() => {
  try { execFileSync("umount", [join(dir, "small")], { stdio: "ignore" }); } catch { /* not mounted */ }
  rmSync(dir, { recursive: true, force: true });
});

describe("createSparseFileSink", () => {
  test("writes the same bytes, leaving zero blocks and trailing zeros as holes", async () => {
    const image = Buffer.concat([
      randomBytes(MIB + 100),            // data ending mid-block
      Buffer.alloc(9 * MIB),             // a big zero run
      randomBytes(4096),
      Buffer.alloc(4096 * 3 + 10),       // a few zero blocks, unaligned
      Buffer.from("tail"),
      Buffer.alloc(6 * MIB + 1),         // trailing zeros, odd size
    ]);
    const path = join(dir, "image.raw");
    const sink = createSparseFileSink(path, { hash: true });
    await pipeline(Readable.from(pieces(image)), sink);
    assert.equal(sha256(readFileSync(path)), sha256(image));
    assert.equal(sink.result?.sha256, sha256(image), "hashed what it wrote, holes included");
    const stat = statSync(path);
    assert.equal(stat.size, image.length);
    assert.equal(sink.bytesWritten, image.length);
    assert.equal(sink.result?.apparentSize, image.length);
    assert.ok(stat.blocks * 512 < 2 * MIB, `allocated ${stat.blocks * 512} bytes for ${image.length}`);
    assert.equal(sink.result?.allocatedBytes, stat.blocks * 512);
    // Blocks holding data: the first MiB + 100 (257), the unaligned 4 KiB of random (2), "tail" (1).
    assert.equal(sink.result?.dataBytesWritten, (257 + 2 + 1) * 4096);
  });

  test("an all-zero image allocates nothing; an empty one is an empty file", async () => {
    const zeros = join(dir, "zeros.raw");
    const sink = createSparseFileSink(zeros);
    await pipeline(Readable.from([Buffer.alloc(8 * MIB)]), sink);
    assert.equal(sink.result?.sha256, undefined, "hashes only when asked");
    assert.equal(statSync(zeros).size, 8 * MIB);
    assert.equal(statSync(zeros).blocks, 0);
    const empty = join(dir, "empty.raw");
    await pipeline(Readable.from([]), createSparseFileSink(empty));
    assert.equal(statSync(empty).size, 0);
  });

  test("refuses to overwrite an existing file", async () => {
    const path = join(dir, "exists.raw");
    writeFileSync(path, "keep me");
    await assert.rejects(pipeline(Readable.from([Buffer.from("x")]), createSparseFileSink(path)), /exists\.raw already exists/);
    assert.equal(readFileSync(path, "utf8"), "keep me");
  });

  test("a full file system gives a clear message", async () => {
    const small = join(dir, "small");
    mkdirSync(small);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "test", small]);
    await assert.rejects(pipeline(Readable.from([randomBytes(3 * MIB)]), createSparseFileSink(join(small, "image.raw"))),
      /^Error: no space left on .*small \(tmpfs of 1\.0 MiB, \d+(\.\d)? (B|KiB|MiB) free\) after writing \d.*: the image does not fit$/);
  });
});
