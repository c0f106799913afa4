// The decoding stage of `netimport pull`: which implementation decodes each compression (decided once,
// by chooseDecoder, from the compression the pull sniffed and the binaries installed), and the stage
// that runs it. gzip, zstd, xz and bzip2; "none" passes a raw image or a plain tar through.
//
// Which implementation decodes, by default ("auto"), from test/bench/decoder-throughput.ts (256 MiB
// disk-like image, 2 busy cores, MB/s of decoded output, JS vs the system's binary through this stage):
//   gzip   Node zlib 410-728   vs gzip -dc 107-191  → zlib always
//   zstd   Node zlib 459-614   vs zstd -dc 638-700  → the binary when present, else zlib
//   xz     WASM       37-43    vs xz -dc    98-108  → the binary when present, else xz-decompress
//   bzip2  JS         35-40    vs bzip2 -dc 19-29   → lbzip2 (all cores), else bzip2, else JS
// (bzip2's JS row is netimport's own decoder, measured apart on 256 MiB: about bzip2's CPU time, but on
// the main thread, where the binary decodes on the other core while Node receives.)
// The JS decoders are complete fallbacks: an initrd needs none of the binaries.
import { Duplex } from "node:stream";
import { createGunzip, createZstdDecompress } from "node:zlib";
import xzDecompress from "xz-decompress";
import { decodeBzip2 } from "./bzip2-decoder.ts";
import { DecodeError, DecoderUnavailable, type DecodeProblem } from "./decode-error.ts";
import { throughProcess, type ProcessDecoder } from "./native-decoder.ts";
import { through } from "./stream-through.ts";
import { findExecutable } from "./system-tools.ts";
import { ZstdFrameSplitter, type FramePiece } from "./zstd-frames.ts";

export type Compression = "gzip" | "zstd" | "xz" | "bzip2" | "none";

const MAGIC: [Compression, number[]][] = [
  ["gzip", [0x1f, 0x8b]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["bzip2", [0x42, 0x5a, 0x68]],
];
const SNIFF_BYTES = 6;

/**
 * The compression the first bytes of a stream announce.
 *
 * ```ts
 * detectCompression(new Uint8Array([0x1f, 0x8b, 8])); // "gzip"
 * ```
 */
export function detectCompression(head: Uint8Array): Compression {
  for (const [name, magic] of MAGIC) {
    if (head.length >= magic.length && magic.every((byte, i) => head[i] === byte)) {
      // bzip2's magic is short: require its block size digit too, so a raw file starting "BZh" stays raw.
      if (name === "bzip2" && !(head.length > 3 && head[3]! >= 0x31 && head[3]! <= 0x39)) continue;
      return name;
    }
  }
  return "none";
}

/**
 * Who decodes: nothing ("none"), Node's zlib, our JS/WASM code, or a system binary, which for a raw
 * image may write the image file itself (`writesFile`: its stdout is the file, see native-file-decoder.ts).
 */
export type DecoderPlan =
  | { kind: "none" }
  | { kind: "zlib"; format: "gzip" | "zstd" }
  | { kind: "js"; format: "xz" | "bzip2" }
  | ({ kind: "process"; writesFile: boolean } & ProcessDecoder);

/** "auto": the system's zstd/xz/bzip2 when installed, else JS (gzip: always zlib); "js": never a binary; "native": binaries for all four when present. */
export type DecoderPreference = "auto" | "js" | "native";

/** The binaries that decode each format to stdout, in order of preference. */
const NATIVE: Record<Exclude<Compression, "none">, [string, string[]][]> = {
  gzip: [["gzip", ["-dc"]]],
  zstd: [["zstd", ["-dcq"]]],
  xz: [["xz", ["-dc", "-T0"]]], // -T0: multi-block files (xz -T) decode on all cores
  // lbzip2 decodes any bzip2 file (not only its own) on all cores: 2.3-2.5x bzip2 on 2 cores.
  bzip2: [["lbzip2", ["-dc"]], ["bzip2", ["-dc"]]],
};

/** Binaries that decode into a regular file and leave its zero runs as holes by themselves. */
const SPARSE_FILE_WRITERS: Partial<Record<Compression, [string, string[]]>> = {
  zstd: ["zstd", ["-dcq", "--sparse"]],
  xz: ["xz", ["-dc", "-T0"]],
};

/**
 * Decides who decodes a `compression` stream. `into` says where the output goes: "file" (a raw
 * image: a binary that writes sparse files gets the file), or "stream" (tar, or any other stage).
 *
 * ```ts
 * chooseDecoder("zstd", "file"); // { kind: "process", command: "/usr/bin/zstd", args: ["-dcq", "--sparse"], format: "zstd", writesFile: true }
 * chooseDecoder("gzip", "file"); // { kind: "zlib", format: "gzip" }
 * ```
 */
export function chooseDecoder(compression: Compression, into: "file" | "stream", preference: DecoderPreference = "auto"): DecoderPlan {
  if (compression === "none") return { kind: "none" };
  const wantNative = preference === "native" || (preference === "auto" && compression !== "gzip");
  if (wantNative) {
    const writer = into === "file" ? SPARSE_FILE_WRITERS[compression] : undefined;
    const writerPath = writer && findExecutable(writer[0]);
    if (writer && writerPath) return { kind: "process", command: writerPath, args: writer[1], format: compression, writesFile: true };
    for (const [name, args] of NATIVE[compression]) {
      const command = findExecutable(name);
      if (command) return { kind: "process", command, args, format: compression, writesFile: false };
    }
  }
  return compression === "gzip" || compression === "zstd" ? { kind: "zlib", format: compression } : { kind: "js", format: compression };
}

/**
 * The Duplex that decodes a stream as `plan` says (not for "none", nor a binary that writes the file).
 *
 * ```ts
 * await pipeline(response.body, createDecoder(chooseDecoder("xz", "stream")), createTarUnpackSink(tmp));
 * ```
 * A truncated or corrupt stream ends the pipeline with a DecodeError naming the format and the problem,
 * e.g. "xz stream is truncated" or "gzip stream is corrupt: incorrect header check" (bzip2 also refuses
 * trailing garbage, as gzip and zstd do). Errors from the input pass through unchanged.
 */
export function createDecoder(plan: Exclude<DecoderPlan, { kind: "none" }>): Duplex {
  if (plan.kind === "process" && plan.writesFile) throw new Error(`${plan.command} writes the image file itself: it is no stream stage`);
  const run = implementation(plan);
  return Duplex.from(async function* (source: AsyncIterable<Buffer>) {
    const inputErrors = new WeakSet<object>();
    async function* watched(): AsyncGenerator<Buffer> {
      const iterator = source[Symbol.asyncIterator]();
      for (;;) {
        let result: IteratorResult<Buffer>;
        try {
          result = await iterator.next();
        } catch (error) {
          if (error instanceof Object) inputErrors.add(error);
          throw error;
        }
        if (result.done) return;
        yield result.value;
      }
    }
    try {
      yield* run(watched());
    } catch (error) {
      if (error instanceof Object && inputErrors.has(error)) throw error;
      throw describe(plan.format, error);
    }
  });
}

function implementation(plan: Exclude<DecoderPlan, { kind: "none" }>): (input: AsyncIterable<Buffer>) => AsyncIterable<Buffer> {
  switch (plan.kind) {
    case "process":
      return (input) => throughProcess(input, plan);
    case "zlib":
      return plan.format === "gzip" ? (input) => through(input, createGunzip({ chunkSize: 256 * 1024 })) : decodeZstdFrames;
    case "js":
      return plan.format === "xz" ? decodeXz : decodeBzip2;
  }
}

/** Each zstd frame through its own zlib decoder (Node's stops after one frame). */
async function* decodeZstdFrames(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const splitter = new ZstdFrameSplitter();
  async function* pieces(): AsyncGenerator<FramePiece> {
    for await (const chunk of input) yield* splitter.push(chunk);
  }
  const iterator = pieces();
  let result = await iterator.next();
  while (!result.done) {
    const start = result.value;
    if (start.skippable) {
      result = await iterator.next();
      continue;
    }
    let inputEnded = false;
    async function* frame(): AsyncGenerator<Buffer> {
      let piece = start;
      for (;;) {
        if (piece.data.length) yield piece.data;
        if (piece.last) return;
        const more = await iterator.next();
        if (more.done) { inputEnded = true; return; }
        piece = more.value;
      }
    }
    yield* through(frame(), createZstdDecompress({ chunkSize: 256 * 1024 }));
    if (inputEnded) break;
    result = await iterator.next();
  }
  if (!splitter.atFrameBoundary) throw new DecodeError("zstd", "truncated");
}

/** xz through xz-decompress (xz-embedded in WASM); its failures become DecodeErrors here, where they are known. */
async function* decodeXz(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const decoded = new xzDecompress.XzReadableStream(ReadableStream.from(input));
  try {
    for await (const chunk of decoded) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  } catch (error) {
    throw xzError(error);
  }
}

// xz-embedded's return codes. xz-decompress reports them only in its message ("get_next_output failed
// with error code 8"): that sentence is the library's one way of saying which.
const XZ_ERRORS: Record<string, [DecodeProblem, string?]> = {
  "2": ["corrupt", "unsupported integrity check"],
  "3": ["corrupt", "out of memory"],
  "4": ["corrupt", "dictionary larger than the memory limit"],
  "5": ["corrupt", "not an xz stream (bad header)"],
  "6": ["corrupt", "unsupported options (e.g. a filter xz-embedded lacks)"],
  "7": ["corrupt", "data does not match its check"],
  "8": ["truncated"],
};

function xzError(error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof DecodeError) return error;
  const code = /^get_next_output failed with error code (\d+)$/.exec(error.message)?.[1];
  const known = code === undefined ? undefined : XZ_ERRORS[code];
  if (!known) return error; // not the decoder's (the input's, say): passed on as it is
  return new DecodeError("xz", known[0], known[1], { cause: error });
}

/** Turns a decoder's own error into a DecodeError, "<format> stream is corrupt: …" / "<format> stream is truncated". */
function describe(format: string, error: unknown): Error {
  if (error instanceof DecodeError || error instanceof DecoderUnavailable) return error;
  const err = error instanceof Error ? error : new Error(String(error));
  // zlib says how a stream ended by its code: Z_BUF_ERROR is input that stopped mid-stream.
  const problem: DecodeProblem = (err as NodeJS.ErrnoException).code === "Z_BUF_ERROR" ? "truncated" : "corrupt";
  return new DecodeError(format, problem, problem === "corrupt" ? err.message : undefined, { cause: err });
}
