// The system's decompressors (zstd, xz, lbzip2/bzip2, gzip) as accelerators, run as helpers of the
// pull (helper-process.ts) with stdin and stdout piped, and the judges of how their runs ended: a
// non-zero exit (or, for the bzip2 tools, an exit 0 that is not enough) becomes a DecodeError that says
// truncated or corrupt. The JS decoders are the fallback when a binary is missing.
import { basename } from "node:path";
import { DecodeError, DecoderUnavailable, TRAILING_GARBAGE } from "./decode-error.ts";
import { startHelper, type HelperExit } from "./helper-process.ts";

const TRUNCATED = /unexpected end|ends unexpectedly|truncated|premature end|incomplete/i;

/** A system decoder: the binary, its arguments (decode to stdout), and the format, for messages. */
export interface ProcessDecoder {
  command: string;
  args: readonly string[];
  format: string;
}

/**
 * Pipes `input` through the decoder and yields its stdout.
 *
 * ```ts
 * for await (const plain of throughProcess(chunks, { command: "/usr/bin/xz", args: ["-dc"], format: "xz" })) out.write(plain);
 * ```
 * A non-zero exit becomes a DecodeError, "<format> stream is corrupt: <stderr>" or "… is truncated: <stderr>";
 * for bzip2 also an exit 0 that left trailing garbage (see judgeBzip2Run). An error of the input is
 * thrown as it is.
 */
export async function* throughProcess(input: AsyncIterable<Uint8Array>, decoder: ProcessDecoder): AsyncGenerator<Buffer> {
  const helper = startHelper(decoder.command, decoder.args);
  // The bzip2 tools do not say everything (see judgeBzip2Run): watch how their input ends. The other
  // formats' tools do, and skip this hop.
  const watched = decoder.format === "bzip2" ? new InputEnd() : undefined;
  let inputError: { error: unknown } | undefined;
  const fed = (async () => {
    try {
      for await (const chunk of watched ? watched.watch(input) : input) {
        if (!(await helper.feed(chunk))) return; // it stopped reading: its exit status says why
      }
      helper.endInput();
    } catch (error) {
      inputError = { error };
      await helper.stop();
    }
  })();
  let finished = false;
  try {
    // Read as soon as there is something, however little: bzip2 and xz write 4-8 KiB at a time, and
    // pausing after short reads to get fuller ones let the 64 KiB pipe fill and stall them (1 GiB
    // through bzip2: 38.6 s with a 1 ms pause, 33.5 s without; xz alone into Node: +25%).
    for await (const chunk of helper.stdout!) yield chunk as Buffer;
    finished = true;
  } finally {
    if (!finished) await helper.stop();
  }
  const [status] = await Promise.all([helper.exited, fed]);
  if (inputError) throw inputError.error;
  const failure = watched ? judgeBzip2Run(decoder.command, status, helper.stderr(), watched) : describeExit(decoder.format, decoder.command, status, helper.stderr());
  if (failure) throw failure;
}

/** How much of its input a decoder was given: all of it or not, and the last bytes given. */
class InputEnd {
  /** The input ended and every byte of it was passed on. */
  fedToEnd = false;
  /** A copy of the last TAIL_BYTES bytes passed on (fewer if the input was shorter). */
  tail: Uint8Array = new Uint8Array(0);

  /** Passes `input` on, keeping track. */
  async *watch(input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of input) {
      // A copy: a producer may reuse a chunk's memory once it has been consumed.
      this.tail = chunk.length >= TAIL_BYTES ? new Uint8Array(chunk.subarray(-TAIL_BYTES)) : concatTail(this.tail, chunk);
      yield chunk;
    }
    this.fedToEnd = true;
  }
}

const TAIL_BYTES = 16;

function concatTail(tail: Uint8Array, chunk: Uint8Array): Uint8Array {
  const both = new Uint8Array(tail.length + chunk.length);
  both.set(tail);
  both.set(chunk, tail.length);
  return both.subarray(-TAIL_BYTES);
}

/**
 * Whether the bzip2 tool's message alone tells a cut from damage. lbzip2's does not: it splits its
 * input into blocks ahead of decoding and reads the bits missing at the end as zeros, so files cut at
 * 300 places gave "bad block header magic", "unexpected end of file" and (one byte short) "stream CRC
 * mismatch", while damaged blocks give any of its errors, "bad block header magic" included. bzip2
 * decodes in order and says "Compressed file ends unexpectedly" exactly when its input stops mid-stream.
 */
function saysWhenCut(command: string): boolean {
  return basename(command) !== "lbzip2";
}

/**
 * Up to this many bits of the end-of-stream magic may differ for the input's end to count as a damaged
 * marker (corrupt) rather than the middle of a block (truncated): one whole damaged byte. Huffman
 * coded data, were it random bits, would come this close to the magic at one of the 8 offsets about once
 * in 75,000 cuts.
 */
const DAMAGED_MARKER_BITS = 8;

/**
 * The verdict on a bzip2 tool's run (lbzip2 or bzip2), from its exit status, its message and how its
 * input ended; undefined when the input decoded completely.
 *
 * - Exit 0 is not enough: lbzip2 ignores trailing garbage silently, bzip2 with a warning. Unless every
 *   byte was read and the input ends with a stream's end-of-stream marker, there was garbage after
 *   the last stream, which gzip and zstd refuse too.
 * - A tool that fails before it was given all of the input found a bad block (lbzip2 quits as soon
 *   as one block fails, bzip2 reads as it decodes): corrupt. So does one whose input ends in a marker,
 *   whole or with one damaged byte (a damaged stream CRC or marker): the input was complete.
 * - Only a failure at the end of an input that stops without a marker is "truncated": whatever
 *   lbzip2 said then, and when bzip2 says so itself.
 */
function judgeBzip2Run(command: string, status: ExitStatus, stderr: string, input: Pick<InputEnd, "fedToEnd" | "tail">): Error | undefined {
  if (status.error) return describeExit("bzip2", command, status, stderr);
  const markerDamage = bzip2MarkerDistance(input.tail);
  if (status.code === 0) {
    if (input.fedToEnd && markerDamage === 0) return undefined;
    return new DecodeError("bzip2", "corrupt", TRAILING_GARBAGE);
  }
  const detail = exitDetail(status, stderr);
  const endsLikeACut = input.fedToEnd && markerDamage > DAMAGED_MARKER_BITS;
  const cutShort = endsLikeACut && (saysWhenCut(command) ? TRUNCATED.test(detail) : true);
  return new DecodeError("bzip2", cutShort ? "truncated" : "corrupt", detail);
}

/**
 * Whether `tail` (the last bytes of a bzip2 file) ends with a stream's end-of-stream marker: the
 * 48-bit magic 0x177245385090, its 32-bit CRC, and up to 7 bits of padding to the byte.
 */
export function endsWithBzip2Trailer(tail: Uint8Array): boolean {
  return bzip2MarkerDistance(tail) === 0;
}

const END_OF_STREAM_MAGIC = 0x177245385090n;

/**
 * How many bits differ between the end-of-stream magic and where it would sit if `tail` ended with
 * a stream's trailer (the magic, a 32-bit CRC, 0-7 bits of padding), at the best of the 8 paddings:
 * 0 for a trailer, a few for a damaged one, about 24 for anything else.
 */
export function bzip2MarkerDistance(tail: Uint8Array): number {
  if (tail.length < 10) return 48;
  let bits = 0n;
  for (const byte of tail.subarray(-11)) bits = (bits << 8n) | BigInt(byte);
  let best = 48;
  for (let padding = 0n; padding < 8n; padding++) {
    const differing = ((bits >> (32n + padding)) & 0xffffffffffffn) ^ END_OF_STREAM_MAGIC;
    best = Math.min(best, differing.toString(2).replaceAll("0", "").length);
  }
  return best;
}

/** How a decoder run ended. */
export type ExitStatus = HelperExit;

/**
 * Why a system decoder failed, as a DecodeError "<format> stream is corrupt: <stderr>" or "… is
 * truncated: <stderr>" (by the tool's message); undefined when it exited 0.
 */
export function describeExit(format: string, command: string, status: ExitStatus, stderr: string): Error | undefined {
  if (status.error) return new DecoderUnavailable(`${format} decoder ${command} could not run: ${status.error.message}`, { cause: status.error });
  if (status.code === 0) return undefined;
  const detail = exitDetail(status, stderr);
  return new DecodeError(format, TRUNCATED.test(detail) ? "truncated" : "corrupt", detail);
}

/** The first line of a failed decoder's stderr, which carries the reason (bzip2 follows it with a page of advice). */
function exitDetail(status: ExitStatus, stderr: string): string {
  return stderr.trim().split("\n")[0]?.trim().replace(/;$/, "") || `exit status ${status.code ?? status.signal}`;
}
