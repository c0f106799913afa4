import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import { chooseDecoder, createDecoder, detectCompression, type Compression, type DecoderPreference } from "../../../runtime/decoder.ts";
import { bzip2MarkerDistance, endsWithBzip2Trailer } from "../../../runtime/native-decoder.ts";
import { findExecutable } from "../../../runtime/system-tools.ts";
import { zstdFrameContentSize } from "../../../runtime/zstd-frames.ts";

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

type DecodeOptions = { implementation?: DecoderPreference; onDetect?: (compression: Compression, kind: string) => void };

/** The decoding stage a pull would plan for `data` (sniffed from its first bytes), or a pass-through. */
function stageFor(data: Buffer, options: DecodeOptions = {}) {
  const compression = detectCompression(data.subarray(0, 32));
  const plan = chooseDecoder(compression, "stream", options.implementation);
  options.onDetect?.(compression, plan.kind === "process" ? "native" : plan.kind);
  return plan.kind === "none" ? new PassThrough() : createDecoder(plan);
}

/** Decodes `data` fed in `chunkSize` pieces; resolves to the output or rejects with the pipeline's error. */
async function decode(data: Buffer, options: DecodeOptions = {}, chunkSize = 64 * 1024): Promise<Buffer> {
  const out: Buffer[] = [];
  const chunks = function* () {
    for (let i = 0; i < data.length; i += chunkSize) yield data.subarray(i, i + chunkSize);
  };
  await pipeline(Readable.from(chunks()), stageFor(data, options), new Writable({
    write(chunk: Buffer, _encoding, callback) { out.push(chunk); callback(); },
  }));
  return Buffer.concat(out);
}

const compressors: Record<Exclude<Compression, "none">, string[]> = {
  gzip: ["gzip", "-c"],
  zstd: ["zstd", "-q", "-c"],
  xz: ["xz", "-c"],
  bzip2: ["bzip2", "-c"],
};
const compressed = new Map<string, Buffer>();
/** `data` compressed by the real CLI (memoised: the CLIs are the slow part of these tests). */
const compress = (format: Exclude<Compression, "none">, data: Buffer) => {
  const key = `${format}:${sha256(data)}`;
  const known = compressed.get(key);
  if (known) return known;
  const [command, ...options] = compressors[format];
  // From a pipe zstd cannot know the size; say it, so the frame header states it as for a file.
  const args = format === "zstd" ? [...options, `--stream-size=${data.length}`] : options;
  const result = execFileSync(command!, args, { input: data, maxBuffer: 1 << 28 });
  compressed.set(key, result);
  return result;
};

let dir: string;
let plain: Buffer;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "netimport-decoder-"));
  // Text, random bytes and zeros: like a small disk image.
  const text = Buffer.from(Array.from({ length: 20000 }, (_, i) => `line ${i} of some text\n`).join(""));
  plain = Buffer.concat([text, randomBytes(100_000), Buffer.alloc(200_000), text.subarray(0, 5000)]);
  writeFileSync(join(dir, "plain"), plain);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("detectCompression", () => {
  test("recognises each magic and nothing else", () => {
    assert.equal(detectCompression(Buffer.from([0x1f, 0x8b, 8, 0])), "gzip");
    assert.equal(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x24])), "zstd");
    assert.equal(detectCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), "xz");
    assert.equal(detectCompression(Buffer.from("BZh91AY&SY")), "bzip2");
    assert.equal(detectCompression(Buffer.from("BZhello")), "none");
    assert.equal(detectCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x01])), "none");
    assert.equal(detectCompression(Buffer.from([0x1f])), "none");
    assert.equal(detectCompression(new Uint8Array()), "none");
  });
});

describe("createDecoder", () => {
  test("passes raw data through unchanged, whatever the chunking", async () => {
    const head = plain.subarray(0, 20_000);
    assert.equal(sha256(await decode(head, {}, 3)), sha256(head));
    assert.equal(sha256(await decode(plain)), sha256(plain));
    assert.equal((await decode(Buffer.alloc(0))).length, 0);
    assert.deepEqual(await decode(Buffer.from("BZh")), Buffer.from("BZh"));
  });

  for (const format of ["gzip", "zstd", "xz", "bzip2"] as const) {
    for (const implementation of ["js", "native"] as const) {
      describe(`${format} (${implementation})`, () => {
        test("decodes to the same bytes and reports what it chose", async () => {
          const detected: string[] = [];
          const out = await decode(compress(format, plain), { implementation, onDetect: (c, i) => detected.push(`${c}/${i}`) });
          assert.equal(sha256(out), sha256(plain));
          const expected = implementation === "native" ? "native" : format === "gzip" || format === "zstd" ? "zlib" : "js";
          assert.deepEqual(detected, [`${format}/${expected}`]);
        });
        test("decodes concatenated members/streams/frames, even fed byte by byte at the seams", async () => {
          const one = compress(format, plain.subarray(0, 70_000));
          const two = compress(format, plain.subarray(70_000));
          const out = await decode(Buffer.concat([one, two]), { implementation }, 4093);
          assert.equal(sha256(out), sha256(plain));
        });
        test("a truncated stream fails with 'is truncated'", async () => {
          const whole = compress(format, plain);
          await assert.rejects(decode(whole.subarray(0, Math.floor(whole.length / 2)), { implementation }),
            new RegExp(`^Error: ${format} stream is truncated`));
        });
        test("a corrupt stream fails with 'is corrupt'", async () => {
          const whole = Buffer.from(compress(format, plain)); // a copy: the memoised one stays intact
          whole.fill(0x55, Math.floor(whole.length / 2), Math.floor(whole.length / 2) + 4);
          await assert.rejects(decode(whole, { implementation }), new RegExp(`^Error: ${format} stream is corrupt: .+`));
        });
      });
    }
  }

  test("zstd: the first frame states its content size; skippable frames are skipped", async () => {
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0]), Buffer.from("hello")]);
    const part = plain.subarray(0, 150_000);
    const data = Buffer.concat([compress("zstd", part.subarray(0, 1000)), skippable, compress("zstd", part.subarray(1000))]);
    for (const chunkSize of [5, 4093, 1 << 20]) {
      const out = await decode(data, { implementation: "js" }, chunkSize);
      assert.equal(sha256(out), sha256(part));
    }
    // What the pull reads from the image's head for its room check.
    assert.equal(zstdFrameContentSize(data.subarray(0, 32)), 1000);
  });

  describe("bzip2 binaries (lbzip2 first: it decodes on all cores)", () => {
    /** Runs `body` with PATH holding only `name` (linked to the system's). */
    const withOnly = async (name: string, body: () => Promise<void>) => {
      const bin = join(dir, `only-${name}`);
      if (!existsSync(join(bin, name))) {
        mkdirSync(bin, { recursive: true });
        symlinkSync(findExecutable(name)!, join(bin, name));
      }
      const path = process.env.PATH;
      process.env.PATH = bin;
      try { await body(); } finally { process.env.PATH = path; }
    };
    for (const name of ["lbzip2", "bzip2"]) {
      test(`${name}: decodes, and tells a truncated stream from a corrupt one`, { skip: !findExecutable(name) && `${name} is not installed` }, () =>
        withOnly(name, async () => {
          const whole = compress("bzip2", plain);
          assert.equal(sha256(await decode(whole, { implementation: "native" })), sha256(plain));
          await assert.rejects(decode(whole.subarray(0, whole.length - 100), { implementation: "native" }),
            new RegExp(`^Error: bzip2 stream is truncated: ${name}: `));
          const damaged = Buffer.from(whole);
          damaged.fill(0x55, 2000, 2004);
          await assert.rejects(decode(damaged, { implementation: "native" }), new RegExp(`^Error: bzip2 stream is corrupt: ${name}: `));
        }));
    }
    /**
     * 8 MB of text in 100 kB blocks: more than a bzip2 tool reads ahead, so one that finds a bad block
     * near the start exits while most of the input is still unread.
     */
    let multiBlock: Buffer | undefined;
    const multiBlockFile = () => {
      multiBlock ??= execFileSync(findExecutable("lbzip2") ? "lbzip2" : "bzip2", ["-1", "-c"],
        { input: randomBytes(6_000_000).toString("base64"), maxBuffer: 1 << 26 });
      return multiBlock;
    };
    const damaged = (data: Buffer, at: number, xor = 0xff) => {
      const copy = Buffer.from(data);
      copy[at < 0 ? copy.length + at : at]! ^= xor;
      return copy;
    };
    for (const name of ["lbzip2", "bzip2"]) {
      const skip = !findExecutable(name) && `${name} is not installed`;
      test(`${name}: a bad block far from the end is corrupt, though the tool stops before the input ends`, { skip }, () => {
        const bad = Buffer.from(multiBlockFile());
        bad.fill(0x55, 200_000, 200_004);
        return withOnly(name, async () => {
          await assert.rejects(decode(bad, { implementation: "native" }),
            new RegExp(`^Error: bzip2 stream is corrupt: ${name}: `));
        });
      });
      test(`${name}: a damaged end-of-stream marker or stream CRC is corrupt; a cut anywhere near the end is truncated`, { skip }, () => {
        const whole = compress("bzip2", plain);
        return withOnly(name, async () => {
          // The trailer: 48 bits of magic, the 32-bit stream CRC, 0-7 bits of padding. Byte -7 is in
          // the magic and byte -2 in the CRC, whatever the padding.
          for (const bad of [damaged(whole, -7), damaged(whole, -7, 0x10), damaged(whole, -2)]) {
            await assert.rejects(decode(bad, { implementation: "native" }), new RegExp(`^Error: bzip2 stream is corrupt: ${name}: `));
          }
          for (const cut of [1, 3, 7, 11, 40, 2000]) {
            await assert.rejects(decode(whole.subarray(0, whole.length - cut), { implementation: "native" }),
              new RegExp(`^Error: bzip2 stream is truncated: ${name}: `), `cut ${cut} bytes short`);
          }
        });
      });
      test(`${name}: trailing garbage is refused; concatenated streams are not garbage`, { skip }, () => {
        const whole = compress("bzip2", plain);
        const first = compress("bzip2", plain.subarray(0, 1000));
        return withOnly(name, async () => {
          for (const garbage of [Buffer.from("garbage"), Buffer.alloc(1), Buffer.alloc(4096), randomBytes(3 << 20)]) {
            await assert.rejects(decode(Buffer.concat([whole, garbage]), { implementation: "native" }),
              { message: "bzip2 stream is corrupt: trailing garbage after the end of the compressed data" }, `${garbage.length} bytes`);
          }
          const two = Buffer.concat([first, whole]);
          assert.equal(sha256(await decode(two, { implementation: "native" })), sha256(Buffer.concat([plain.subarray(0, 1000), plain])));
        });
      });
    }
    test("the end-of-stream marker is found at any bit offset, and only at the very end", () => {
      for (const size of [0, 1, 37, 5000, 300_000]) {
        const whole = compress("bzip2", plain.subarray(0, size));
        assert.equal(endsWithBzip2Trailer(whole), true, `size ${size}`);
        assert.equal(endsWithBzip2Trailer(whole.subarray(0, -1)), false, `size ${size} minus a byte`);
        assert.equal(endsWithBzip2Trailer(Buffer.concat([whole, Buffer.from("garbage")])), false);
      }
      assert.equal(endsWithBzip2Trailer(Buffer.alloc(0)), false);
    });
    test("a trailer with one damaged byte is near the marker; the ends of cut files are not", () => {
      const whole = compress("bzip2", plain);
      assert.equal(bzip2MarkerDistance(damaged(whole, -7, 0x01)), 1);
      assert.ok(bzip2MarkerDistance(damaged(whole, -8)) <= 8);
      for (let cut = 1; cut < 2000; cut += 7) assert.ok(bzip2MarkerDistance(whole.subarray(0, -cut)) > 8, `cut ${cut}`);
    });
  });

  test("bzip2 (js): trailing garbage is refused, a cut-short next stream is truncated", async () => {
    const whole = compress("bzip2", plain.subarray(0, 50_000));
    for (const garbage of [Buffer.from("garbage"), Buffer.alloc(1), Buffer.alloc(4096), randomBytes(3 << 20)]) {
      for (const chunkSize of [1 << 20, 4093]) {
        await assert.rejects(decode(Buffer.concat([whole, garbage]), { implementation: "js" }, chunkSize),
          { message: "bzip2 stream is corrupt: trailing garbage after the end of the compressed data" }, `${garbage.length} bytes`);
      }
    }
    for (const next of ["B", "BZ", "BZh", "BZh9"]) {
      await assert.rejects(decode(Buffer.concat([whole, Buffer.from(next)]), { implementation: "js" }), { message: "bzip2 stream is truncated" }, next);
    }
  });

  test("bzip2 (js): a block of zeros comes out in slices of at most 64 KiB", async () => {
    const zeros = Buffer.alloc(12 << 20);
    const sizes: number[] = [];
    await pipeline(Readable.from([compress("bzip2", zeros)]), stageFor(Buffer.from("BZh9"), { implementation: "js" }), new Writable({
      write(chunk: Buffer, _encoding, callback) {
        sizes.push(chunk.length);
        assert.ok(chunk.every((byte) => byte === 0));
        callback();
      },
    }));
    assert.equal(sizes.reduce((a, b) => a + b, 0), zeros.length);
    assert.ok(Math.max(...sizes) <= 64 << 10);
  });

  test("an error from the input passes through unchanged", async () => {
    const data = compress("xz", plain);
    for (const implementation of ["js", "native"] as const) {
      const failing = async function* () {
        yield data.subarray(0, 1000);
        throw new Error("connection reset by peer");
      };
      await assert.rejects(pipeline(Readable.from(failing()), stageFor(data, { implementation }), new Writable({ write: (_c, _e, cb) => cb() })),
        /^Error: connection reset by peer$/);
    }
  });

  test("auto: zlib for gzip, the system's binaries for the others", async () => {
    const detected: string[] = [];
    for (const format of ["gzip", "zstd", "xz", "bzip2"] as const) {
      await decode(compress(format, plain), { onDetect: (c, i) => detected.push(`${c}/${i}`) });
    }
    assert.deepEqual(detected, ["gzip/zlib", "zstd/native", "xz/native", "bzip2/native"]);
  });

  test("without the binaries on PATH, 'native' falls back to the JS decoders", async () => {
    const input = compress("bzip2", plain);
    const path = process.env.PATH;
    process.env.PATH = join(dir, "no-such-bin");
    try {
      const detected: string[] = [];
      const out = await decode(input, { implementation: "native", onDetect: (c, i) => detected.push(`${c}/${i}`) });
      assert.equal(sha256(out), sha256(plain));
      assert.deepEqual(detected, ["bzip2/js"]);
    } finally {
      process.env.PATH = path;
    }
  });

  test("files written by the CLIs decode from disk", async () => {
    execFileSync("xz", ["-k", "-T2", "--block-size=65536", join(dir, "plain")]);
    const out = await decode(readFileSync(join(dir, "plain.xz")), { implementation: "js" });
    assert.equal(sha256(out), sha256(plain));
  });
});
