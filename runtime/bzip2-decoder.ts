// bzip2 in pure JS (seek-bzip), for initrds without the bzip2 binary. seek-bzip decodes synchronously
// from a byte source, so it is driven one block at a time: a block is attempted only once ~2 MiB of input
// are buffered (more than any real compressed block), and if it still runs dry the attempt is rolled back
// and retried with more input. Output is produced in 64 KiB slices by our own copy of its inverse-BWT
// loop, so a 45 MiB block of zeros never sits in memory whole and the event loop breathes between slices.
// The slices are small because they are the one allocation per output byte: 1 MiB slices, freed at
// the pace of the sink, left glibc's heap fragmented (1 GiB pull: peak RSS 174 MiB; 64 KiB: 152-155).
import Bunzip from "seek-bzip";
import { DecodeError, TRAILING_GARBAGE } from "./decode-error.ts";

const ATTEMPT_AT = 2 * 1024 * 1024;
const NativeUint32Array = Uint32Array;
const SLICE = 64 * 1024;

class NeedMoreInput extends Error {}

const STREAM_MAGIC = Buffer.from("BZh");

/** Errors this decoder raises name the format and say truncated or corrupt: seek-bzip's own are corrupt. */
export function bzip2Error(error: unknown): DecodeError {
  if (error instanceof DecodeError) return error;
  return new DecodeError("bzip2", "corrupt", error instanceof Error ? error.message : String(error), { cause: error });
}

/**
 * Decodes bzip2 (including several concatenated streams, as pbzip2 writes) from `source`.
 *
 * ```ts
 * for await (const plain of decodeBzip2(compressedChunks)) output.write(plain);
 * ```
 */
export async function* decodeBzip2(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  // The input buffered so far is buf[pos, end): one buffer, compacted and grown in place, rather than
  // a new concatenation for every block (a few thousand a GiB, each another large allocation).
  let buf = Buffer.allocUnsafe(2 * ATTEMPT_AT);
  let pos = 0;
  let end = 0;
  let ended = false;
  const input = new Bunzip.Stream();
  input.readByte = () => {
    if (pos < end) return buf[pos++]!;
    if (ended) throw new DecodeError("bzip2", "truncated");
    throw new NeedMoreInput();
  };
  let bz: InstanceType<typeof Bunzip> | undefined;
  let inStream = false; // between a stream header and its end-of-stream marker

  // seek-bzip allocates a fresh 3.6 MB Uint32Array (`new Uint32Array(this.dbufSize)`) for every 900 kB
  // block: a GiB of output left hundreds of them to the garbage collector (peak RSS 230 MiB). Each
  // block is written out whole before the next one is read, so while seek-bzip runs, that one
  // allocation gets the last block's array back, zeroed as new (the inverse BWT ORs into it).
  const reusingUint32Array = new Proxy(Uint32Array, {
    construct(target, args: unknown[], newTarget) {
      const spare = bz?.dbuf;
      if (spare && args.length === 1 && args[0] === spare.length) return spare.fill(0);
      return Reflect.construct(target, args, newTarget) as object;
    },
  });

  /** Runs `step` with a snapshot of the input position, restoring it if the input runs dry. */
  const attempt = (step: () => void): boolean => {
    const saved = { pos, bitOffset: bz?.reader.bitOffset, curByte: bz?.reader.curByte, hasByte: bz?.reader.hasByte, crc: bz?.streamCRC };
    // seek-bzip allocates with the deprecated `new Buffer(n)`; in the bundle that is "our" code, so Node
    // would print DEP0005 into the boot log. The check is synchronous, so silence it just around the call.
    const quiet = process.noDeprecation;
    process.noDeprecation = true;
    globalThis.Uint32Array = reusingUint32Array;
    try {
      step();
      return true;
    } catch (error) {
      if (!(error instanceof NeedMoreInput)) throw bzip2Error(error);
      pos = saved.pos;
      if (bz && saved.bitOffset !== undefined) {
        bz.reader.bitOffset = saved.bitOffset;
        bz.reader.curByte = saved.curByte!;
        bz.reader.hasByte = saved.hasByte!;
        bz.streamCRC = saved.crc!;
      }
      return false;
    } finally {
      process.noDeprecation = quiet;
      globalThis.Uint32Array = NativeUint32Array;
    }
  };

  const append = (chunk: Uint8Array) => {
    if (end + chunk.length > buf.length) {
      const kept = end - pos;
      if (kept + chunk.length > buf.length) {
        const bigger = Buffer.allocUnsafe(Math.max(2 * buf.length, kept + chunk.length));
        buf.copy(bigger, 0, pos, end);
        buf = bigger;
      } else {
        buf.copyWithin(0, pos, end);
      }
      pos = 0;
      end = kept;
    }
    buf.set(chunk, end);
    end += chunk.length;
  };

  /** Decodes as many whole blocks as the buffered input holds, yielding their output. */
  async function* drain(): AsyncGenerator<Buffer> {
    for (;;) {
      if (!inStream) {
        if (pos >= end) return;
        if (bz !== undefined) {
          // After a complete stream: another one (pbzip2, cat), or trailing garbage, which the bzip2
          // tools ignore but we refuse, as for the other formats. The start of a stream cut short is
          // a truncated one.
          const next = buf.subarray(pos, Math.min(pos + STREAM_MAGIC.length, end));
          const startsStream = next.equals(STREAM_MAGIC.subarray(0, next.length));
          if (!startsStream) throw new DecodeError("bzip2", "corrupt", TRAILING_GARBAGE);
          if (next.length < STREAM_MAGIC.length && !ended) return;
        }
        if (!attempt(() => {
          if (bz === undefined) bz = new Bunzip(input, null);
          else bz._start_bunzip(input, null);
        })) return;
        inStream = true;
      }
      const decoder = bz!;
      let more = false;
      if (!attempt(() => { more = decoder._init_block(); })) return;
      if (!more) {
        let expected = 0;
        if (!attempt(() => { expected = decoder.reader.read(32) >>> 0; })) return;
        if (expected !== decoder.streamCRC) {
          throw new DecodeError("bzip2", "corrupt", `stream CRC mismatch (got ${decoder.streamCRC.toString(16)}, expected ${expected.toString(16)})`);
        }
        inStream = false;
        continue;
      }
      yield* blockOutput(decoder);
    }
  }

  for await (const chunk of source) {
    append(chunk);
    if (end - pos >= ATTEMPT_AT) yield* drain();
  }
  ended = true;
  yield* drain();
  if (bz === undefined || inStream) throw new DecodeError("bzip2", "truncated");
}

/** The inverse BWT and RLE1 of seek-bzip's `_read_bunzip`, writing into 64 KiB slices. */
function* blockOutput(bz: InstanceType<typeof Bunzip>): Generator<Buffer> {
  const dbuf = bz.dbuf;
  const crc = bz.blockCRC;
  let pos = bz.writePos;
  let current = bz.writeCurrent;
  let count = bz.writeCount;
  let run = bz.writeRun;
  let out = Buffer.allocUnsafe(SLICE);
  let n = 0;
  while (count) {
    count--;
    const previous = current;
    pos = dbuf[pos]!;
    current = pos & 0xff;
    pos >>= 8;
    let copies: number;
    let outbyte: number;
    if (run++ === 3) {
      copies = current;
      outbyte = previous;
      current = -1;
    } else {
      copies = 1;
      outbyte = current;
    }
    if (n + copies > SLICE) {
      yield out.subarray(0, n);
      out = Buffer.allocUnsafe(SLICE);
      n = 0;
    }
    if (copies === 1) {
      crc.updateCRCRun(outbyte, 1);
      out[n++] = outbyte;
    } else if (copies > 1) {
      crc.updateCRCRun(outbyte, copies);
      out.fill(outbyte, n, n + copies);
      n += copies;
    }
    if (current !== previous) run = 0;
  }
  bz.writeCount = count;
  if (n) yield out.subarray(0, n);
  if (crc.getCRC() !== bz.targetBlockCRC) {
    throw new DecodeError("bzip2", "corrupt", `block CRC mismatch (got ${crc.getCRC().toString(16)}, expected ${bz.targetBlockCRC.toString(16)})`);
  }
}
