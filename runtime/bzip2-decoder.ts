// bzip2 in pure JS, for initrds without the lbzip2 or bzip2 binary: our own decoder of the format, after
// bzip2 1.0.8's decompress.c and bzlib.c, and checking everything they check.
//
// A stream is "BZh" and a level '1'-'9' (blocks of at most level × 100 000 bytes before RLE1 is undone),
// then blocks, each: the magic 0x314159265359, the CRC of the block's output, a "randomised" bit, the BWT
// origin pointer, which byte values occur, 2-6 Huffman tables with the selectors saying which codes each
// run of 50 symbols, and the symbols (MTF indexes, with runs of the front byte as RUNA/RUNB digits);
// then the magic 0x177245385090, the combined CRC and padding to a byte. Blocks are not byte-aligned.
//
// Streaming: the Huffman, MTF and run decoding of a block (into `tt`) is synchronous, attempted once the
// buffer holds more than any real compressed block (2 MiB; bzip2's are < 1 MB, and 900 001 symbols of
// 20 bits make < 2.3 MB) or the input has ended. Should the input run dry anyway, the attempt is dropped
// (the bit cursor is the only state it moved) and retried with more; past 4 MiB a block is refused, so
// endless data (code lengths may step up and down forever) cannot make us buffer without bound.
// The inverse BWT and RLE1 then write the block's output into 64 KiB slices, so a 45 MiB block of zeros
// never sits in memory whole and the event loop breathes between slices. The slices are small because
// they are the one allocation per output byte: 1 MiB slices, freed at the pace of the sink, left glibc's
// heap fragmented (1 GiB pull: peak RSS 174 MiB; 64 KiB: 152-155). Every other table is allocated once
// and reused for every block: `tt` (3.6 MB for "BZh9") is replaced only by a stream with larger blocks.
import { DecodeError, TRAILING_GARBAGE } from "./decode-error.ts";

const SLICE = 64 * 1024;
const ATTEMPT_AT = 2 * 1024 * 1024;
/** No block is this long: 900 001 symbols of at most 20 bits, plus < 40 kB of tables. */
const MAX_BLOCK_BYTES = 4 * 1024 * 1024;
const GROUP_SIZE = 50;
const MAX_GROUPS = 6;
const MAX_ALPHA = 258;
const MAX_CODE_BITS = 20;
/** Codes up to this long decode with one table look-up; longer ones (rare: bzip2 writes ≤ 17) by search. */
const FAST_BITS = 10;

/** Thrown (one instance, no stack to capture) when a step needs bytes not yet buffered. */
const needMoreInput = new Error("bzip2: more input needed");

const corrupt = (detail: string) => new DecodeError("bzip2", "corrupt", detail);
const hex = (n: number) => (n >>> 0).toString(16);

/** Errors this decoder raises name the format and say truncated or corrupt; anything else is a corrupt stream. */
export function bzip2Error(error: unknown): DecodeError {
  if (error instanceof DecodeError) return error;
  return new DecodeError("bzip2", "corrupt", error instanceof Error ? error.message : String(error), { cause: error });
}

export interface DecodeBzip2Options {
  /** Buffered bytes that make a block worth attempting (default 2 MiB); tests make it small to exercise retries. */
  attemptAt?: number;
}

/**
 * Decodes bzip2 (including several concatenated streams, as pbzip2 writes) from `source`.
 *
 * ```ts
 * for await (const plain of decodeBzip2(compressedChunks)) output.write(plain);
 * ```
 * A stream cut short is "truncated"; bad data, a CRC mismatch or bytes after the last stream "corrupt".
 */
export async function* decodeBzip2(source: AsyncIterable<Uint8Array>, options: DecodeBzip2Options = {}): AsyncGenerator<Buffer> {
  const decoder = new Bzip2Decoder(options.attemptAt ?? ATTEMPT_AT);
  for await (const chunk of source) {
    decoder.append(chunk);
    yield* decoder.drain();
  }
  decoder.ended = true;
  yield* decoder.drain();
  if (decoder.streams === 0 || decoder.blockMax !== 0) throw new DecodeError("bzip2", "truncated");
}

class Bzip2Decoder {
  // The input buffered so far is buf[pos, end): one buffer, compacted and grown in place, rather than
  // a new concatenation for every block. `bits` holds `count` more bits read ahead, the next one highest.
  private buf = Buffer.allocUnsafe(64 * 1024);
  private pos = 0;
  private end = 0;
  private bits = 0;
  private count = 0;
  ended = false;
  private readonly attemptAt: number;
  /** Buffered bytes the next attempt waits for (unless the input has ended). */
  private want: number;

  /** The current stream's block size limit; 0 between streams. */
  blockMax = 0;
  streams = 0;
  private streamCrc = 0;

  // The block decoded last: its output is tt's chain from `origPtr`, `nblock` long.
  private tt = new Uint32Array(0);
  private nblock = 0;
  private origPtr = 0;
  private blockCrc = 0;
  private randomised = false;

  // Tables reused by every block: per group g, fast[g << FAST_BITS ...], limit/delta[g * 21 + length],
  // perm[g * 258 ...] (see buildCode).
  private readonly selectors = new Uint8Array(1 << 15);
  private readonly lengths = new Uint8Array(MAX_ALPHA);
  private readonly fast = new Uint16Array(MAX_GROUPS << FAST_BITS);
  private readonly limit = new Int32Array(MAX_GROUPS * (MAX_CODE_BITS + 1));
  private readonly delta = new Int32Array(MAX_GROUPS * (MAX_CODE_BITS + 1));
  private readonly perm = new Uint16Array(MAX_GROUPS * MAX_ALPHA);
  private readonly maxLength = new Uint8Array(MAX_GROUPS);
  private readonly lengthCount = new Int32Array(MAX_CODE_BITS + 1);
  private readonly nextCode = new Int32Array(MAX_CODE_BITS + 1);
  private readonly byteOf = new Uint8Array(256);
  private readonly mtf = new Uint8Array(256);
  private readonly byteCount = new Int32Array(256);

  constructor(attemptAt: number) {
    this.attemptAt = attemptAt;
    this.want = attemptAt;
  }

  append(chunk: Uint8Array): void {
    if (this.end + chunk.length > this.buf.length) {
      const kept = this.end - this.pos;
      if (kept + chunk.length > this.buf.length) {
        const bigger = Buffer.allocUnsafe(Math.max(2 * this.buf.length, kept + chunk.length));
        this.buf.copy(bigger, 0, this.pos, this.end);
        this.buf = bigger;
      } else {
        this.buf.copyWithin(0, this.pos, this.end);
      }
      this.pos = 0;
      this.end = kept;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }

  /** Decodes what the buffered input holds (all of it once the input has ended), yielding the output. */
  *drain(): Generator<Buffer> {
    while (this.ended || this.end - this.pos >= this.want) {
      const { pos, bits, count } = this;
      let step: "block" | "other" | "idle";
      try {
        step = this.blockMax === 0 ? this.streamHeader() : this.block();
      } catch (error) {
        if (error !== needMoreInput) throw bzip2Error(error);
        // Roll back to the start of the step and wait for more input, within reason.
        this.pos = pos;
        this.bits = bits;
        this.count = count;
        if (this.ended) throw new DecodeError("bzip2", "truncated");
        if (this.end - this.pos >= MAX_BLOCK_BYTES) throw corrupt(`no block ends within ${MAX_BLOCK_BYTES} bytes`);
        this.want = this.end - this.pos + this.attemptAt / 2;
        return;
      }
      this.want = this.attemptAt;
      if (step === "idle") return;
      if (step === "block") yield* this.output();
    }
  }

  /** The next `n` (≤ 24) bits of input, most significant first. */
  private read(n: number): number {
    while (this.count < n) {
      if (this.pos >= this.end) throw needMoreInput;
      this.bits = (this.bits << 8) | this.buf[this.pos++]!;
      this.count += 8;
    }
    this.count -= n;
    return (this.bits >>> this.count) & ((1 << n) - 1);
  }

  /** "BZh1".."BZh9", or nothing more at all after a complete stream. */
  private streamHeader(): "other" | "idle" {
    // Whatever follows a complete stream must be another one (pbzip2, cat): bytes that are not are
    // trailing garbage, which the bzip2 tools ignore but we refuse, as for the other formats.
    const garbage = (detail: string) => (this.streams > 0 ? corrupt(TRAILING_GARBAGE) : corrupt(detail));
    if (this.pos === this.end && this.ended && this.streams > 0) return "idle";
    for (let i = 0; i < 3; i++) {
      if (this.pos + i >= this.end) throw needMoreInput;
      if (this.buf[this.pos + i] !== "BZh".charCodeAt(i)) throw garbage("not a bzip2 stream (bad magic)");
    }
    if (this.pos + 3 >= this.end) throw needMoreInput;
    const level = this.buf[this.pos + 3]! - 0x30;
    if (level < 1 || level > 9) throw garbage(`bad block size '${String.fromCharCode(level + 0x30)}' in the stream header`);
    this.pos += 4;
    this.blockMax = level * 100_000;
    this.streamCrc = 0;
    if (this.tt.length < this.blockMax) this.tt = new Uint32Array(this.blockMax);
    return "other";
  }

  /** Reads a block into `tt` ("block"), or the end of the stream and its CRC ("other"). */
  private block(): "block" | "other" {
    const magicHigh = this.read(24);
    const magicLow = this.read(24);
    if (magicHigh === 0x177245 && magicLow === 0x385090) {
      const expected = ((this.read(16) << 16) | this.read(16)) >>> 0;
      if (expected !== this.streamCrc) throw corrupt(`stream CRC mismatch (got ${hex(this.streamCrc)}, expected ${hex(expected)})`);
      // The stream is padded to a byte: drop the padding bits.
      this.bits = 0;
      this.count = 0;
      this.blockMax = 0;
      this.streams++;
      return "other";
    }
    if (magicHigh !== 0x314159 || magicLow !== 0x265359) throw corrupt(`bad block magic ${hex(magicHigh)}${hex(magicLow).padStart(6, "0")}`);
    this.blockCrc = ((this.read(16) << 16) | this.read(16)) >>> 0;
    // bzip2 0.9.0 "randomised" blocks it could not sort fast (0.9.5 and later never write them).
    this.randomised = this.read(1) === 1;
    this.origPtr = this.read(24);

    // Which byte values occur: 16 bits for 16 ranges of 16, then 16 bits for each range in use.
    const byteOf = this.byteOf;
    let inUse = 0;
    const ranges = this.read(16);
    for (let i = 0; i < 16; i++) {
      if ((ranges & (0x8000 >>> i)) === 0) continue;
      const bytes = this.read(16);
      for (let j = 0; j < 16; j++) if (bytes & (0x8000 >>> j)) byteOf[inUse++] = i * 16 + j;
    }
    if (inUse === 0) throw corrupt("a block uses no byte values");
    // Symbols: RUNA, RUNB, MTF indexes 1..inUse-1, end of block.
    const alphaSize = inUse + 2;

    const groups = this.read(3);
    if (groups < 2 || groups > MAX_GROUPS) throw corrupt(`${groups} Huffman tables (2 to 6 allowed)`);
    const selectorCount = this.read(15);
    if (selectorCount === 0) throw corrupt("no selectors");
    // Selectors are MTF-coded in unary.
    const order = [0, 1, 2, 3, 4, 5];
    for (let i = 0; i < selectorCount; i++) {
      let j = 0;
      while (this.read(1)) if (++j >= groups) throw corrupt("selector out of range");
      const group = order[j]!;
      for (; j > 0; j--) order[j] = order[j - 1]!;
      order[0] = group;
      this.selectors[i] = group;
    }
    // Code lengths: a 5-bit start, then per symbol "1x" steps (x: 0 up, 1 down) ended by "0".
    for (let g = 0; g < groups; g++) {
      let length = this.read(5);
      for (let s = 0; s < alphaSize; s++) {
        for (;;) {
          if (length < 1 || length > MAX_CODE_BITS) throw corrupt(`Huffman code length ${length}`);
          if (!this.read(1)) break;
          length += this.read(1) ? -1 : 1;
        }
        this.lengths[s] = length;
      }
      this.buildCode(g, alphaSize);
    }
    this.symbols(inUse, selectorCount);
    if (this.origPtr >= this.nblock) throw corrupt(`BWT origin ${this.origPtr} outside a block of ${this.nblock}`);

    // The inverse BWT. tt's low bytes are the last column (L) of the sorted rotations; sorted, they are
    // the first column (F), and the k-th occurrence of a byte in F is its k-th in L. The high 24 bits of
    // tt[j] become the position in L of F[j]: followed from the origin row, they spell the block forward.
    const tt = this.tt;
    const start = this.byteCount;
    for (let b = 0, sum = 0; b < 256; b++) {
      const n = start[b]!;
      start[b] = sum;
      sum += n;
    }
    for (let i = 0; i < this.nblock; i++) tt[start[tt[i]! & 0xff]!++]! |= i << 8;
    return "block";
  }

  /**
   * Canonical Huffman code for group `g` from `lengths`: codes are assigned in order of length, then of
   * symbol. A 20-bit window `v` holds a code of length L when v < limit[L] (the end of the length-L codes,
   * left-aligned) for the least such L; the symbol is perm[(v >> (20 - L)) + delta[L]].
   */
  private buildCode(g: number, alphaSize: number): void {
    const { lengths, lengthCount, nextCode, limit, delta, perm, fast } = this;
    lengthCount.fill(0);
    let maxLength = 0;
    for (let s = 0; s < alphaSize; s++) {
      const length = lengths[s]!;
      lengthCount[length]!++;
      if (length > maxLength) maxLength = length;
    }
    const row = g * (MAX_CODE_BITS + 1);
    let code = 0;
    let before = 0; // symbols with shorter codes
    for (let length = 1; length <= MAX_CODE_BITS; length++) {
      nextCode[length] = code;
      delta[row + length] = before - code;
      code += lengthCount[length]!;
      before += lengthCount[length]!;
      // More codes than this length has room for: not a prefix code.
      if (code > 1 << length) throw corrupt("Huffman code lengths over-subscribed");
      limit[row + length] = code << (MAX_CODE_BITS - length);
      code <<= 1;
    }
    // An incomplete code is allowed (as by bzip2): the window values it leaves unassigned are corrupt data.
    this.maxLength[g] = maxLength;
    const table = g << FAST_BITS;
    fast.fill(0, table, table + (1 << FAST_BITS));
    for (let s = 0; s < alphaSize; s++) {
      const length = lengths[s]!;
      const c = nextCode[length]!++;
      perm[g * MAX_ALPHA + c + delta[row + length]!] = s;
      if (length <= FAST_BITS) {
        const first = table + (c << (FAST_BITS - length));
        fast.fill((s << 5) | length, first, first + (1 << (FAST_BITS - length)));
      }
    }
  }

  /**
   * Decodes the block's symbols into tt (one byte per entry, the BWT's last column) and byteCount.
   * The hot loop of the block: the bit cursor lives in locals.
   */
  private symbols(inUse: number, selectorCount: number): void {
    const { buf, end, tt, fast, limit, delta, perm, maxLength, selectors, mtf, byteCount, blockMax } = this;
    let { pos, bits, count } = this;
    const endOfBlock = inUse + 1;
    for (let i = 0; i < inUse; i++) mtf[i] = this.byteOf[i]!;
    byteCount.fill(0);
    let nblock = 0;
    let selector = 0;
    let groupLeft = 0;
    let table = 0;
    let row = 0;
    let permRow = 0;
    let longest = 0;
    // A run of the front byte is written in bijective base 2, RUNA = 1 and RUNB = 2 times the digit's weight.
    let run = 0;
    let weight = 1;
    for (;;) {
      if (groupLeft === 0) {
        if (selector >= selectorCount) throw corrupt("more symbols than selectors");
        const g = selectors[selector++]!;
        table = g << FAST_BITS;
        row = g * (MAX_CODE_BITS + 1);
        permRow = g * MAX_ALPHA;
        longest = maxLength[g]!;
        groupLeft = GROUP_SIZE;
      }
      groupLeft--;
      // A valid stream has ≥ 80 bits after any symbol (the end-of-stream magic and CRC), so reading a
      // 20-bit window ahead asks for no byte the stream lacks.
      while (count < MAX_CODE_BITS) {
        if (pos >= end) throw needMoreInput;
        bits = (bits << 8) | buf[pos++]!;
        count += 8;
      }
      const window = (bits >>> (count - MAX_CODE_BITS)) & 0xfffff;
      const entry = fast[table + (window >>> (MAX_CODE_BITS - FAST_BITS))]!;
      let symbol: number;
      if (entry !== 0) {
        symbol = entry >>> 5;
        count -= entry & 31;
      } else {
        let length = FAST_BITS;
        do {
          if (++length > longest) throw corrupt("invalid Huffman code");
        } while (window >= limit[row + length]!);
        symbol = perm[permRow + (window >>> (MAX_CODE_BITS - length)) + delta[row + length]!]!;
        count -= length;
      }

      if (symbol <= 1) {
        run += weight << symbol;
        weight <<= 1;
        if (run > blockMax) throw corrupt("a run longer than the block");
        continue;
      }
      if (run !== 0) {
        if (nblock + run > blockMax) throw corrupt("a block longer than its stream header allows");
        const b = mtf[0]!;
        tt.fill(b, nblock, nblock + run);
        byteCount[b]! += run;
        nblock += run;
        run = 0;
        weight = 1;
      }
      if (symbol === endOfBlock) break;
      if (nblock >= blockMax) throw corrupt("a block longer than its stream header allows");
      // MTF index symbol - 1 (index 0 only ever comes as a run). Most indexes are small: shift by hand.
      let i = symbol - 1;
      const b = mtf[i]!;
      if (i < 16) {
        for (; i > 0; i--) mtf[i] = mtf[i - 1]!;
      } else {
        mtf.copyWithin(1, 0, i);
      }
      mtf[0] = b;
      tt[nblock++] = b;
      byteCount[b]!++;
    }
    this.pos = pos;
    this.bits = bits;
    this.count = count;
    this.nblock = nblock;
  }

  /** The block's output (inverse BWT, then RLE1: 4 equal bytes and a count of more), in slices. */
  private *output(): Generator<Buffer> {
    const tt = this.tt;
    let pos = tt[this.origPtr]! >>> 8;
    if (this.randomised) derandomise(tt, pos, this.nblock);
    let left = this.nblock;
    let last = -1;
    let run = 0; // how many times `last` came in a row; after 4, the next byte is a count
    let crc = -1;
    while (left > 0) {
      const out = Buffer.allocUnsafe(SLICE);
      let n = 0;
      // One step writes at most 255 bytes.
      while (left > 0 && n <= SLICE - 255) {
        const entry = tt[pos]!;
        pos = entry >>> 8;
        const b = entry & 0xff;
        left--;
        if (run === 4) {
          for (let k = 0; k < b; k++) {
            out[n++] = last;
            crc = (crc << 8) ^ CRC_TABLE[(crc >>> 24) ^ last]!;
          }
          run = 0;
        } else {
          out[n++] = b;
          crc = (crc << 8) ^ CRC_TABLE[(crc >>> 24) ^ b]!;
          if (b === last) {
            run++;
          } else {
            last = b;
            run = 1;
          }
        }
      }
      if (n > 0) yield out.subarray(0, n);
    }
    const got = ~crc >>> 0;
    if (got !== this.blockCrc) throw corrupt(`block CRC mismatch (got ${hex(got)}, expected ${hex(this.blockCrc)})`);
    this.streamCrc = (((this.streamCrc << 1) | (this.streamCrc >>> 31)) ^ got) >>> 0;
  }
}

/**
 * Undoes bzip2 0.9.0's randomisation: it flipped the low bit of the bytes at pseudo-random gaps from
 * RAND_GAPS (of the BWT's output, before RLE1 is undone). Done along tt's chain before the output loop,
 * so that loop stays as it is for the blocks of every other encoder.
 */
function derandomise(tt: Uint32Array, pos: number, nblock: number): void {
  let gap = 0;
  let next = 0;
  for (let i = 0; i < nblock; i++) {
    const entry = tt[pos]!;
    if (gap === 0) {
      gap = RAND_GAPS[next]!;
      next = (next + 1) & 511;
    }
    gap--;
    if (gap === 1) tt[pos] = entry ^ 1;
    pos = entry >>> 8;
  }
}

/** CRC-32 as bzip2 computes it: polynomial 0x04c11db7, most significant bit first (zlib's goes the other way). */
const CRC_TABLE = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  let c = i << 24;
  for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
  CRC_TABLE[i] = c;
}

/** bzip2's BZ2_rNums (randtable.c), part of the format. */
const RAND_GAPS = new Uint16Array([
  619, 720, 127, 481, 931, 816, 813, 233, 566, 247, 985, 724, 205, 454, 863, 491, 741, 242, 949, 214,
  733, 859, 335, 708, 621, 574, 73, 654, 730, 472, 419, 436, 278, 496, 867, 210, 399, 680, 480, 51,
  878, 465, 811, 169, 869, 675, 611, 697, 867, 561, 862, 687, 507, 283, 482, 129, 807, 591, 733, 623,
  150, 238, 59, 379, 684, 877, 625, 169, 643, 105, 170, 607, 520, 932, 727, 476, 693, 425, 174, 647,
  73, 122, 335, 530, 442, 853, 695, 249, 445, 515, 909, 545, 703, 919, 874, 474, 882, 500, 594, 612,
  641, 801, 220, 162, 819, 984, 589, 513, 495, 799, 161, 604, 958, 533, 221, 400, 386, 867, 600, 782,
  382, 596, 414, 171, 516, 375, 682, 485, 911, 276, 98, 553, 163, 354, 666, 933, 424, 341, 533, 870,
  227, 730, 475, 186, 263, 647, 537, 686, 600, 224, 469, 68, 770, 919, 190, 373, 294, 822, 808, 206,
  184, 943, 795, 384, 383, 461, 404, 758, 839, 887, 715, 67, 618, 276, 204, 918, 873, 777, 604, 560,
  951, 160, 578, 722, 79, 804, 96, 409, 713, 940, 652, 934, 970, 447, 318, 353, 859, 672, 112, 785,
  645, 863, 803, 350, 139, 93, 354, 99, 820, 908, 609, 772, 154, 274, 580, 184, 79, 626, 630, 742,
  653, 282, 762, 623, 680, 81, 927, 626, 789, 125, 411, 521, 938, 300, 821, 78, 343, 175, 128, 250,
  170, 774, 972, 275, 999, 639, 495, 78, 352, 126, 857, 956, 358, 619, 580, 124, 737, 594, 701, 612,
  669, 112, 134, 694, 363, 992, 809, 743, 168, 974, 944, 375, 748, 52, 600, 747, 642, 182, 862, 81,
  344, 805, 988, 739, 511, 655, 814, 334, 249, 515, 897, 955, 664, 981, 649, 113, 974, 459, 893, 228,
  433, 837, 553, 268, 926, 240, 102, 654, 459, 51, 686, 754, 806, 760, 493, 403, 415, 394, 687, 700,
  946, 670, 656, 610, 738, 392, 760, 799, 887, 653, 978, 321, 576, 617, 626, 502, 894, 679, 243, 440,
  680, 879, 194, 572, 640, 724, 926, 56, 204, 700, 707, 151, 457, 449, 797, 195, 791, 558, 945, 679,
  297, 59, 87, 824, 713, 663, 412, 693, 342, 606, 134, 108, 571, 364, 631, 212, 174, 643, 304, 329,
  343, 97, 430, 751, 497, 314, 983, 374, 822, 928, 140, 206, 73, 263, 980, 736, 876, 478, 430, 305,
  170, 514, 364, 692, 829, 82, 855, 953, 676, 246, 369, 970, 294, 750, 807, 827, 150, 790, 288, 923,
  804, 378, 215, 828, 592, 281, 565, 555, 710, 82, 896, 831, 547, 261, 524, 462, 293, 465, 502, 56,
  661, 821, 976, 991, 658, 869, 905, 758, 745, 193, 768, 550, 608, 933, 378, 286, 215, 979, 792, 961,
  61, 688, 793, 644, 986, 403, 106, 366, 905, 644, 372, 567, 466, 434, 645, 210, 389, 550, 919, 135,
  780, 773, 635, 389, 707, 100, 626, 958, 165, 504, 920, 176, 193, 713, 857, 265, 203, 50, 668, 108,
  645, 990, 626, 197, 510, 357, 358, 850, 858, 364, 936, 638,
]);
