// The decoding stage of `netimport pull`: sniffs the compression from the magic bytes and decodes
// gzip, zstd, xz or bzip2; anything else passes through unchanged (a raw image or a plain tar).
//
// Which implementation decodes, by default ("auto"), from test/bench/decoder-throughput.ts (256 MiB
// disk-like image, 2 busy cores, MB/s of decoded output, JS vs the system's binary through this stage):
//   gzip   Node zlib 410-728   vs gzip -dc 107-191  → zlib always
//   zstd   Node zlib 459-614   vs zstd -dc 638-700  → the binary when present, else zlib
//   xz     WASM       37-43    vs xz -dc    98-108  → the binary when present, else xz-decompress
//   bzip2  seek-bzip   9-13    vs bzip2 -dc 19-29   → lbzip2 (all cores), else bzip2, else seek-bzip
// The JS decoders are complete fallbacks: an initrd needs none of the binaries.
import { Duplex } from "node:stream";
import { createGunzip, createZstdDecompress } from "node:zlib";
import xzDecompress from "xz-decompress";
import { decodeBzip2 } from "./bzip2-decoder.ts";
import { DecodeError, type DecodeProblem } from "./decode-error.ts";
import { findExecutable, throughProcess } from "./native-decoder.ts";
import { through } from "./stream-through.ts";
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

export interface DecoderOptions {
  /** Called once with the detected compression and the implementation chosen. */
  onDetect?: (compression: Compression, implementation: "zlib" | "js" | "native" | "none") => void;
  /** "auto" (default): the system's zstd/xz/bzip2 when on PATH, else JS (gzip: always zlib). "js": never spawn. "native": binaries for all four when present. */
  implementation?: "auto" | "js" | "native";
}

/**
 * A Duplex that takes compressed bytes and gives decoded ones.
 *
 * ```ts
 * await pipeline(response.body, createDecoder(), createSparseFileSink(tmp));
 * ```
 * A truncated or corrupt stream ends the pipeline with a DecodeError naming the format and the problem,
 * e.g. "xz stream is truncated" or "gzip stream is corrupt: incorrect header check" (bzip2 also refuses
 * trailing garbage, as gzip and zstd do). Errors from the input pass through unchanged.
 */
export function createDecoder(options: DecoderOptions = {}): Duplex {
  return Duplex.from(async function* (source: AsyncIterable<Buffer>) {
    yield* decode(source, options);
  });
}

async function* decode(source: AsyncIterable<Buffer>, options: DecoderOptions): AsyncGenerator<Buffer> {
  const inputErrors = new WeakSet<object>();
  const iterator = source[Symbol.asyncIterator]();
  const next = async () => {
    try {
      return await iterator.next();
    } catch (error) {
      if (error instanceof Object) inputErrors.add(error);
      throw error;
    }
  };
  const head: Buffer[] = [];
  let headBytes = 0;
  let done = false;
  while (headBytes < SNIFF_BYTES) {
    const result = await next();
    if (result.done) { done = true; break; }
    head.push(result.value);
    headBytes += result.value.length;
  }
  const first = Buffer.concat(head);
  const compression = detectCompression(first);
  async function* rest(): AsyncGenerator<Buffer> {
    if (first.length) yield first;
    if (done) return;
    for (;;) {
      const result = await next();
      if (result.done) return;
      yield result.value;
    }
  }
  const implementation = chooseImplementation(compression, options.implementation ?? "auto");
  options.onDetect?.(compression, implementation.kind);
  try {
    yield* implementation.run(rest());
  } catch (error) {
    if (error instanceof Object && inputErrors.has(error)) throw error;
    throw describe(compression, error);
  }
}

interface Implementation {
  kind: "zlib" | "js" | "native" | "none";
  run(input: AsyncIterable<Buffer>): AsyncIterable<Buffer>;
}

/** The binaries that decode each format, in order of preference. */
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
 * The system decoder that can write a `compression` stream straight into a sparse image file, when
 * it is installed and `preference` allows binaries (see createNativeFileDecoder).
 *
 * ```ts
 * sparseFileDecoder("zstd"); // { command: "/usr/bin/zstd", args: ["-dcq", "--sparse"] }, or undefined
 * ```
 */
export function sparseFileDecoder(compression: Compression, preference: DecoderOptions["implementation"] = "auto"): { command: string; args: string[] } | undefined {
  const writer = SPARSE_FILE_WRITERS[compression];
  if (!writer || preference === "js") return undefined;
  const command = findExecutable(writer[0]);
  return command ? { command, args: writer[1] } : undefined;
}

/** Which implementation createDecoder() will use for `compression`: "native" means a separate process. */
export function decoderKind(compression: Compression, preference: DecoderOptions["implementation"] = "auto"): Implementation["kind"] {
  return chooseImplementation(compression, preference).kind;
}

function chooseImplementation(compression: Compression, preference: "auto" | "js" | "native"): Implementation {
  if (compression === "none") return { kind: "none", run: (input) => input };
  const wantNative = preference === "native" || (preference === "auto" && compression !== "gzip");
  if (wantNative) {
    for (const [name, args] of NATIVE[compression]) {
      const binary = findExecutable(name);
      if (binary) return { kind: "native", run: (input) => throughProcess(input, binary, args, compression) };
    }
  }
  switch (compression) {
    case "gzip":
      return { kind: "zlib", run: (input) => through(input, createGunzip({ chunkSize: 256 * 1024 })) };
    case "zstd":
      return { kind: "zlib", run: decodeZstdFrames };
    case "xz":
      return { kind: "js", run: decodeXz };
    case "bzip2":
      return { kind: "js", run: decodeBzip2 };
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

async function* decodeXz(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const decoded = new xzDecompress.XzReadableStream(ReadableStream.from(input));
  for await (const chunk of decoded) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

// xz-embedded's return codes, as xz-decompress reports them ("get_next_output failed with error code 8").
const XZ_ERRORS: Record<string, [DecodeProblem, string?]> = {
  "2": ["corrupt", "unsupported integrity check"],
  "3": ["corrupt", "out of memory"],
  "4": ["corrupt", "dictionary larger than the memory limit"],
  "5": ["corrupt", "not an xz stream (bad header)"],
  "6": ["corrupt", "unsupported options (e.g. a filter xz-embedded lacks)"],
  "7": ["corrupt", "data does not match its check"],
  "8": ["truncated"],
};

/** Turns a decoder's own error into a DecodeError, "<format> stream is corrupt: …" / "<format> stream is truncated". */
function describe(compression: Compression, error: unknown): Error {
  if (error instanceof DecodeError) return error;
  const err = error instanceof Error ? error : new Error(String(error));
  const message = err.message;
  // Already worded by our own code: a decoder that could not start, or zstd-frames.ts's framing errors.
  if (message.startsWith(`${compression} stream is`) || message.startsWith(`${compression} decoder`)) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const xzCode = compression === "xz" ? /error code (\d+)/.exec(message)?.[1] : undefined;
  const [problem, detail]: [DecodeProblem, string?] = code === "Z_BUF_ERROR" || /unexpected end of file/.test(message)
    ? ["truncated"]
    : (xzCode !== undefined && XZ_ERRORS[xzCode]) || ["corrupt", message];
  return new DecodeError(compression, problem, detail, { cause: err });
}
