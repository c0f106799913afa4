import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import { createSparseFileSink, nonZeroRuns } from "../../../runtime/sparse-file-sink.ts";

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
    const sink = createSparseFileSink(path);
    await pipeline(Readable.from(pieces(image)), sink);
    assert.equal(sha256(readFileSync(path)), sha256(image));
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

  test("byte-sized chunks, and a block spread over many chunks, are written right", async () => {
    const image = Buffer.concat([Buffer.alloc(4096), Buffer.from("x"), Buffer.alloc(4095 + 8192), randomBytes(70_000), Buffer.alloc(3)]);
    const path = join(dir, "tiny-chunks.raw");
    const sink = createSparseFileSink(path);
    await pipeline(Readable.from((function* () { for (let i = 0; i < image.length; i++) yield image.subarray(i, i + 1); })()), sink);
    assert.ok(readFileSync(path).equals(image));
    // The block holding "x", and the random bytes to the end of the file (the last block is short).
    assert.equal(sink.result?.dataBytesWritten, 4096 + 70_000 + 3);
  });

  test("the chunks are written as given, never copied or held beyond their write", async () => {
    const image = randomBytes(5 * MIB + 123);
    const chunks = Array.from(pieces(image));
    const path = join(dir, "as-given.raw");
    await pipeline(Readable.from(chunks), createSparseFileSink(path));
    assert.ok(readFileSync(path).equals(image));
  });
});

describe("nonZeroRuns", () => {
  test("finds the runs of non-zero blocks across chunk boundaries, as slices of the chunks", () => {
    const a = Buffer.concat([Buffer.alloc(4096), Buffer.alloc(2048, 1)]);
    const b = Buffer.concat([Buffer.alloc(2048), Buffer.alloc(4096), Buffer.alloc(100, 2)]);
    const runs = nonZeroRuns([a, b], 8192);
    assert.deepEqual(runs.map((r) => [r.position, r.length]), [[8192 + 4096, 4096], [8192 + 12288, 100]]);
    assert.equal(runs[0]!.pieces[0]!.buffer, a.buffer, "a slice of the chunk, not a copy");
    assert.ok(Buffer.concat(runs[0]!.pieces).equals(Buffer.concat([Buffer.alloc(2048, 1), Buffer.alloc(2048)])));
    assert.deepEqual(nonZeroRuns([Buffer.alloc(3 * 4096)], 0), []);
  });
});

