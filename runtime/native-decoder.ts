// The system's decompressors (xz, bzip2, zstd, gzip) as accelerators: spawned with stdin/stdout piped,
// stderr kept for the error message. Used only when the binary is on PATH; the JS decoders are the fallback.
import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { basename, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The absolute path of an executable named `name` on PATH (systemd's default PATH when unset), or undefined. */
export function findExecutable(name: string, path = process.env.PATH || DEFAULT_PATH): string | undefined {
  const dirs = path.split(":").filter(Boolean);
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

const TRUNCATED = /unexpected end|ends unexpectedly|truncated|premature end|incomplete/i;

/**
 * Pipes `input` through `command args` and yields its stdout.
 *
 * ```ts
 * for await (const plain of throughProcess(chunks, "/usr/bin/xz", ["-dc"], "xz")) out.write(plain);
 * ```
 * A non-zero exit becomes "<format> stream is corrupt: <stderr>" or "… is truncated: <stderr>".
 */
export async function* throughProcess(input: AsyncIterable<Uint8Array>, command: string, args: string[], format: string): AsyncGenerator<Buffer> {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => { stderr = (stderr + text).slice(-4000); });
  const exited = new Promise<ExitStatus>((resolve) => {
    child.on("error", (error) => resolve({ code: null, signal: null, error }));
    child.on("close", (code, signal) => resolve({ code, signal }));
  });
  let inputError: Error | undefined;
  // lbzip2 says "bad block header magic" whether its input was cut short or damaged: keep the input's
  // last bytes to tell the two apart.
  const isLbzip2 = basename(command) === "lbzip2";
  let tail: Uint8Array = new Uint8Array(0);
  async function* keepingTail(): AsyncGenerator<Uint8Array> {
    for await (const chunk of input) {
      tail = chunk.length >= 16 ? chunk : Buffer.concat([tail, chunk]).subarray(-16);
      yield chunk;
    }
  }
  const fed = pipeline(Readable.from(isLbzip2 ? keepingTail() : input, { objectMode: false }), child.stdin).catch((error: NodeJS.ErrnoException) => {
    // EPIPE: the decoder quit early (its exit status says why); anything else came from the input.
    if (error.code !== "EPIPE" && error.code !== "ERR_STREAM_PREMATURE_CLOSE") inputError = error;
  });
  let finished = false;
  try {
    // Read as soon as there is something, however little: bzip2 and xz write 4-8 KiB at a time, and
    // pausing after short reads to get fuller ones let the 64 KiB pipe fill and stall them (1 GiB
    // through bzip2: 38.6 s with a 1 ms pause, 33.5 s without; xz alone into Node: +25%).
    for await (const chunk of child.stdout) yield chunk as Buffer;
    finished = true;
  } finally {
    if (!finished && child.exitCode === null) child.kill("SIGKILL");
  }
  const [status] = await Promise.all([exited, fed]);
  if (inputError) throw inputError;
  const cutShort = status.code !== 0 && isLbzip2 ? !endsWithBzip2Trailer(tail) : undefined;
  const failure = describeExit(format, command, status, stderr, cutShort);
  if (failure) throw failure;
}

/**
 * Whether `tail` (the last bytes of a bzip2 file) ends with a stream's end-of-stream marker: the
 * 48-bit magic 0x177245385090, its 32-bit CRC, and up to 7 bits of padding to the byte.
 */
export function endsWithBzip2Trailer(tail: Uint8Array): boolean {
  if (tail.length < 10) return false;
  let bits = 0n;
  for (const byte of tail.subarray(-11)) bits = (bits << 8n) | BigInt(byte);
  for (let padding = 0n; padding < 8n; padding++) {
    if (((bits >> (32n + padding)) & 0xffffffffffffn) === 0x177245385090n) return true;
  }
  return false;
}

export interface ExitStatus { code: number | null; signal: NodeJS.Signals | null; error?: Error }

/**
 * Why a system decoder failed, as "<format> stream is corrupt: <stderr>" or "… is truncated: <stderr>";
 * undefined when it exited 0.
 */
export function describeExit(format: string, command: string, status: ExitStatus, stderr: string, cutShort?: boolean): Error | undefined {
  if (status.error) return new Error(`${format} decoder ${command} could not run: ${status.error.message}`);
  if (status.code === 0) return undefined;
  // The first line carries the reason (bzip2 follows it with a page of advice).
  const detail = stderr.trim().split("\n")[0]?.trim().replace(/;$/, "") || `exit status ${status.code ?? status.signal}`;
  const what = cutShort ?? TRUNCATED.test(detail) ? "truncated" : "corrupt";
  return new Error(`${format} stream is ${what}: ${detail}`);
}
