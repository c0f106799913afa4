// The system's zstd and xz decoding straight into the image file: identical bytes, holes for the
// zero runs, and the same clear errors as the in-process decoders.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { before, describe, it } from "node:test";
import { chooseDecoder } from "../../../runtime/decoder.ts";
import { createNativeFileDecoder } from "../../../runtime/native-file-decoder.ts";
import { tempDir } from "../../support/temp-dir.ts";

const MiB = 1024 * 1024;
const FORMATS = [
  { format: "zstd", compress: ["zstd", "-q", "-c"] },
  { format: "xz", compress: ["xz", "-c", "-0"] },
] as const;

let dir: string;
let image: Buffer;
const compressed = new Map<string, Buffer>();

/** Feeds `data` in 64 KiB pieces into a native file decoder writing `path`. */
function decodeInto(format: "zstd" | "xz", data: Buffer, path: string): Promise<void> {
  const native = chooseDecoder(format, "file", "native");
  assert.ok(native.kind === "process" && native.writesFile, `${format} is installed (test/setup-host.sh)`);
  const chunks = function* () {
    for (let i = 0; i < data.length; i += 65536) yield data.subarray(i, i + 65536);
  };
  return pipeline(Readable.from(chunks()), createNativeFileDecoder(native, path));
}

before(() => {
  dir = tempDir("netimport-native-file-");
  // A hole of 2 MiB between data: both decoders must leave it unallocated.
  image = Buffer.concat([randomBytes(MiB), Buffer.alloc(2 * MiB), Buffer.from("text\n".repeat(200_000)), Buffer.alloc(MiB)]);
  for (const { format, compress } of FORMATS) {
    compressed.set(format, execFileSync(compress[0], compress.slice(1), { input: image, maxBuffer: 64 * MiB }));
  }
});

for (const { format } of FORMATS) {
  describe(`createNativeFileDecoder, ${format}`, () => {
    it("writes the decoded image, with its zero runs as holes and its full size", async () => {
      const path = join(dir, `${format}-ok.raw`);
      await decodeInto(format, compressed.get(format)!, path);
      assert.ok(readFileSync(path).equals(image));
      const stat = statSync(path);
      assert.equal(stat.size, image.length);
      // 3 MiB of the 5 MiB are zeros (the trailing MiB included): at most the data plus slack is allocated.
      assert.ok(stat.blocks * 512 <= image.length - 3 * MiB + 256 * 1024, `allocated ${stat.blocks * 512} bytes`);
    });

    it("fails on a truncated stream, naming the format", async () => {
      const data = compressed.get(format)!;
      await assert.rejects(decodeInto(format, data.subarray(0, data.length - 200), join(dir, `${format}-short.raw`)),
        new RegExp(`^Error: ${format} stream is (truncated|corrupt): `));
    });

    it("fails on a corrupt stream, naming the format", async () => {
      const data = Buffer.from(compressed.get(format)!);
      for (let i = 200; i < data.length - 100; i += 997) data[i]! ^= 0x55;
      await assert.rejects(decodeInto(format, data, join(dir, `${format}-bad.raw`)), new RegExp(`^Error: ${format} stream is corrupt: `));
    });

    it("refuses to overwrite an existing file", async () => {
      const path = join(dir, `${format}-exists.raw`);
      writeFileSync(path, "keep me");
      await assert.rejects(decodeInto(format, compressed.get(format)!, path), /already exists/);
      assert.equal(readFileSync(path, "utf8"), "keep me");
    });
  });
}

describe("createNativeFileDecoder, full file system", () => {
  it("says there is no space left, with the numbers, instead of blaming the stream", async (t) => {
    const small = join(dir, "small");
    mkdirSync(small);
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "test", small]);
    } catch {
      t.skip("cannot mount a tmpfs here");
      return;
    }
    try {
      const big = execFileSync("zstd", ["-q", "-c"], { input: randomBytes(3 * MiB), maxBuffer: 8 * MiB });
      await assert.rejects(decodeInto("zstd", big, join(small, "os.raw")),
        /^Error: no space left on .*small \(tmpfs of 1\.0 MiB, .* free\): the image does not fit$/);
    } finally {
      // Fails (EBUSY) if the decoder left the file open.
      execFileSync("umount", [small]);
    }
  });
});
