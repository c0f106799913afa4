// Our bzip2 decoder (runtime/bzip2-decoder.ts) against the real bzip2: round trips of what `bzip2` writes,
// fed in chunks of every size; truncated and damaged copies, which must fail with a DecodeError and never
// pass with wrong bytes; and streams no bzip2 writes, crafted bit by bit here (a tiny encoder, checked
// against `bzip2 -d`), one for each check of the format, randomised blocks (bzip2 0.9.0) included.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import fc from "fast-check";
import { decodeBzip2 } from "../../../runtime/bzip2-decoder.ts";
import { DecodeError, TRAILING_GARBAGE } from "../../../runtime/decode-error.ts";

const bzip2 = (data: Uint8Array, level = 9) => execFileSync("bzip2", [`-${level}`, "-c"], { input: data, maxBuffer: 1 << 28 });

/** `bzip2 -d`'s verdict on a stream: its output, or undefined when it refuses the stream. */
function referenceDecode(data: Uint8Array): Buffer | undefined {
  const result = spawnSync("bzip2", ["-dc"], { input: data, maxBuffer: 1 << 28 });
  return result.status === 0 ? result.stdout : undefined;
}

interface Outcome { output: Buffer; error?: unknown }

/** Decodes `data` fed in `chunkSize` pieces: what came out, and the error if it failed. */
async function run(data: Uint8Array, chunkSize = 1 << 16, attemptAt?: number): Promise<Outcome> {
  const out: Buffer[] = [];
  async function* chunks() {
    for (let i = 0; i < data.length; i += chunkSize) yield data.subarray(i, i + chunkSize);
  }
  try {
    for await (const piece of decodeBzip2(chunks(), { attemptAt })) out.push(piece);
  } catch (error) {
    return { output: Buffer.concat(out), error };
  }
  return { output: Buffer.concat(out) };
}

async function decode(data: Uint8Array, chunkSize?: number, attemptAt?: number): Promise<Buffer> {
  const { output, error } = await run(data, chunkSize, attemptAt);
  if (error) throw error;
  return output;
}

/** Asserts a failure with a DecodeError of `problem` (and `detail`, when given). */
function assertFails(outcome: Outcome, problem: "truncated" | "corrupt", detail?: string | RegExp, message?: string): void {
  assert.ok(outcome.error instanceof DecodeError, `${message ?? ""}: ${String(outcome.error ?? "no error")}`);
  assert.equal(outcome.error.format, "bzip2", message);
  assert.equal(outcome.error.problem, problem, `${message ?? ""}: ${outcome.error.message}`);
  if (typeof detail === "string") assert.equal(outcome.error.message, `bzip2 stream is ${problem}: ${detail}`, message);
  else if (detail) assert.match(outcome.error.message, detail, message);
}

/** Deterministic pseudo-random bytes (xorshift32). */
function noise(length: number, seed = 1): Buffer {
  const out = Buffer.alloc(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
const text = (length: number, seed = 1) => {
  const words = ["block", "sort", "huffman", "the", "a", "zero", "run", "of", "initrd", "image", "\n", "netimport"];
  const r = noise(length, seed);
  const parts: string[] = [];
  for (let i = 0, n = 0; n < length; i++) {
    const word = `${words[r[i % length]! % words.length]} `;
    parts.push(word);
    n += word.length;
  }
  return Buffer.from(parts.join("").slice(0, length));
};
/** Runs of every length from 1 to 300 (RLE1 writes 4 bytes and a count 0..255 for 4..259), each of another byte. */
const runs = () => Buffer.concat(Array.from({ length: 300 }, (_, i) => Buffer.alloc(i + 1, (i * 7 + 1) & 0xff)));
const mixed = Buffer.concat([text(150_000), noise(60_000), Buffer.alloc(300_000), runs(), text(20_000, 7), Buffer.alloc(5000, 0xff)]);

describe("round trips of what bzip2 writes", () => {
  test("block sizes -1 (several blocks) and -9, mixed text, random bytes, zeros and runs", async () => {
    for (const level of [1, 9]) {
      const compressed = bzip2(mixed, level);
      assert.ok((await decode(compressed)).equals(mixed), `-${level}`);
      // One big chunk, and small ones with an attempt at each: blocks cut short are retried.
      assert.ok((await decode(compressed, compressed.length)).equals(mixed), `-${level}, one chunk`);
      assert.ok((await decode(compressed, 4093, 16 << 10)).equals(mixed), `-${level}, retried`);
    }
  });

  test("empty input file, one byte, every byte value", async () => {
    assert.equal((await decode(bzip2(Buffer.alloc(0)))).length, 0);
    for (const byte of [0, 0x61, 0xff]) assert.deepEqual(await decode(bzip2(Buffer.from([byte]))), Buffer.from([byte]));
    const all = Buffer.from(Array.from({ length: 256 * 3 }, (_, i) => (i * 97) & 0xff));
    assert.ok((await decode(bzip2(all))).equals(all));
  });

  test("runs: RLE1 counts 0..255, long zero runs and long periods (RUNA/RUNB runs up to the block size)", async () => {
    for (const data of [
      runs(),
      Buffer.alloc(8 << 20),
      Buffer.from("abc".repeat(300_000)),
      Buffer.concat([Buffer.alloc(899_999, 0x41), Buffer.from("B")]),
    ]) {
      for (const level of [1, 9]) assert.ok((await decode(bzip2(data, level))).equals(data), `${data.length} bytes, -${level}`);
    }
  });

  test("random bytes (large MTF indexes, codes of every length)", async () => {
    const data = noise(1 << 20, 42);
    assert.ok((await decode(bzip2(data))).equals(data));
  });

  test("concatenated streams decode as one, empty ones included", async () => {
    const a = text(120_000, 3);
    const b = noise(50_000, 4);
    const joined = Buffer.concat([bzip2(a, 1), bzip2(Buffer.alloc(0)), bzip2(b, 9), bzip2(Buffer.from("x"), 2)]);
    const expected = Buffer.concat([a, b, Buffer.from("x")]);
    assert.ok((await decode(joined)).equals(expected));
    assert.ok((await decode(joined, 1000, 1)).equals(expected), "attempted at every chunk");
  });

  test("chunked input at every chunk size, on a small file", async () => {
    const data = Buffer.concat([text(1500, 5), Buffer.alloc(600), runs().subarray(0, 400)]);
    // Two streams, the second with larger blocks than the first.
    const compressed = Buffer.concat([bzip2(data, 1), bzip2(data.subarray(0, 100), 2)]);
    const expected = Buffer.concat([data, data.subarray(0, 100)]);
    for (let size = 1; size <= compressed.length; size++) {
      // attemptAt 1: every chunk starts an attempt, and every cut-short one is rolled back.
      assert.ok((await decode(compressed, size, 1)).equals(expected), `chunks of ${size}`);
    }
  });

  test("property: bzip2 output decodes to its input, whatever the chunking", async () => {
    const pieces = fc.oneof(
      fc.uint8Array({ maxLength: 2000 }),
      fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 5000 })).map(([byte, n]) => new Uint8Array(n).fill(byte)),
      fc.constantFrom(...["hello ", "bzip2 ", "\n", "aaaa", "abab"].map((s) => Buffer.from(s))),
    );
    await fc.assert(fc.asyncProperty(fc.array(pieces, { maxLength: 30 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 3000 }),
      async (parts, level, chunkSize) => {
        const data = Buffer.concat(parts);
        assert.ok((await decode(bzip2(data, level), chunkSize, 1)).equals(data));
      }), { numRuns: 60, seed: 20250612 });
  });
});

describe("cut short or damaged", () => {
  const plain = Buffer.concat([text(130_000, 11), runs()]);
  const whole = bzip2(plain, 1); // two blocks

  test("cut anywhere: truncated, and what came out before is the start of the data", async () => {
    const cuts = new Set<number>();
    for (let cut = 0; cut < 80; cut++) cuts.add(cut);
    for (let cut = whole.length - 80; cut < whole.length; cut++) cuts.add(cut);
    for (let cut = 80; cut < whole.length; cut += 211) cuts.add(cut);
    for (const cut of cuts) {
      const outcome = await run(whole.subarray(0, cut), 8192);
      // Every bit the decoder has read before the cut is the encoder's, and it reads at most 20 bits
      // past a symbol, of the ≥ 80 every stream has after its last one: a cut can only be truncated.
      assertFails(outcome, "truncated", undefined, `cut at ${cut}`);
      assert.ok(plain.subarray(0, outcome.output.length).equals(outcome.output), `cut at ${cut}: wrong bytes came out`);
    }
  });

  test("a cut between concatenated streams is a shorter valid input; a cut in the next one is truncated", async () => {
    const first = bzip2(Buffer.from("first"));
    const joined = Buffer.concat([first, bzip2(Buffer.from("second"))]);
    assert.equal((await decode(joined.subarray(0, first.length))).toString(), "first");
    for (let cut = first.length + 1; cut < joined.length; cut++) assertFails(await run(joined.subarray(0, cut)), "truncated", undefined, `cut at ${cut}`);
  });

  test("empty input is truncated", async () => {
    assertFails(await run(Buffer.alloc(0)), "truncated");
  });

  test("any byte damaged: a DecodeError, or (where the byte does not matter) the right output", async () => {
    const small = Buffer.concat([text(2000, 12), runs().subarray(0, 1000)]);
    const compressed = bzip2(small, 1);
    const passed: string[] = [];
    for (let at = 0; at < compressed.length; at++) {
      for (const mask of [0x02, 0x10, 0xff]) {
        const damaged = Buffer.from(compressed);
        damaged[at]! ^= mask;
        const outcome = await run(damaged, 256);
        if (outcome.error === undefined) {
          assert.ok(outcome.output.equals(small), `byte ${at} ^ ${mask}: wrong output passed`);
          assert.ok(referenceDecode(damaged)?.equals(small), `byte ${at} ^ ${mask}: bzip2 -d does not agree`);
          passed.push(`${at}^${mask}`);
        } else {
          assert.ok(outcome.error instanceof DecodeError, `byte ${at} ^ ${mask}: ${String(outcome.error)}`);
        }
      }
    }
    // What passes (bzip2 -d agrees, above) is damage to what the output does not depend on: "BZh1" → "BZh3"
    // (larger blocks allowed than used), the code table no selector picks, the last byte's padding bits.
    assert.ok(passed.includes("3^2"));
    assert.ok(passed.length < 20, passed.join(" "));
  });

  test("property: damage anywhere in a multi-block stream never passes with wrong output", async () => {
    await fc.assert(fc.asyncProperty(fc.nat({ max: whole.length - 1 }), fc.integer({ min: 1, max: 255 }), async (at, mask) => {
      const damaged = Buffer.from(whole);
      damaged[at]! ^= mask;
      const outcome = await run(damaged, 8192);
      if (outcome.error === undefined) assert.ok(outcome.output.equals(plain));
      else assert.ok(outcome.error instanceof DecodeError, String(outcome.error));
    }), { numRuns: 150, seed: 20250613 });
  });

  test("trailing garbage is corrupt; the start of another stream is truncated", async () => {
    const stream = bzip2(Buffer.from("data"));
    for (const garbage of ["garbage", "\0", "BZh0", "BZhx", "BZ!"]) {
      for (const chunkSize of [1, 1 << 16]) {
        assertFails(await run(Buffer.concat([stream, Buffer.from(garbage)]), chunkSize, 1), "corrupt", TRAILING_GARBAGE, garbage);
      }
    }
    assertFails(await run(Buffer.concat([stream, Buffer.alloc(5 << 20)])), "corrupt", TRAILING_GARBAGE);
    for (const start of ["B", "BZ", "BZh", "BZh9"]) assertFails(await run(Buffer.concat([stream, Buffer.from(start)])), "truncated", undefined, start);
  });
});

// ---- a tiny bzip2 encoder, to write what bzip2 would not ----

/** bzip2's CRC-32, bit by bit (the decoder's is table-driven). */
function crc32(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte << 24;
    for (let k = 0; k < 8; k++) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1;
  }
  return ~crc >>> 0;
}

class BitWriter {
  private readonly bytes: number[] = [];
  private acc = 0;
  bitLength = 0;

  put(value: number, count: number): this {
    for (let i = count - 1; i >= 0; i--) {
      this.acc = (this.acc << 1) | (Math.floor(value / 2 ** i) & 1);
      if (++this.bitLength % 8 === 0) {
        this.bytes.push(this.acc);
        this.acc = 0;
      }
    }
    return this;
  }

  bits(pattern: string): this {
    for (const c of pattern) this.put(c === "1" ? 1 : 0, 1);
    return this;
  }

  /** The bytes, the last one padded with zero bits. */
  done(): Buffer {
    const tail = this.bitLength % 8;
    return Buffer.from(tail ? [...this.bytes, this.acc << (8 - tail)] : this.bytes);
  }
}

interface Block {
  crc: number;
  randomised?: boolean;
  origPtr: number;
  /** The byte values in use, ascending. */
  used: number[];
  groups?: number;
  /** Which group codes each run of 50 symbols (default: enough of them, alternating 0 and 1). */
  selectors?: number[];
  /** Raw selector MTF values, instead of `selectors`. */
  selectorMtf?: number[];
  /** Per group, a code length per symbol (default: 0 flat, 1 skewed, with codes up to 20 bits). */
  lengths?: number[][];
  /** Bits for the code lengths instead of those `lengths` makes. */
  lengthBits?: string;
  symbols: number[];
  /** Bits after the symbols (default none). */
  tail?: string;
}

const flatLengths = (alphaSize: number) => Array<number>(alphaSize).fill(Math.ceil(Math.log2(alphaSize)));
/** Lengths 1, 2, .. 11 for the first symbols, 20 for the rest: an incomplete code with long codes. */
const skewedLengths = (alphaSize: number) => Array.from({ length: alphaSize }, (_, s) => (s < 11 ? s + 1 : 20));

/** Canonical codes, as bzip2 assigns them: by length, then by symbol. */
function canonicalCodes(lengths: number[]): number[] {
  const codes: number[] = [];
  let code = 0;
  for (let length = 1; length <= 20; length++) {
    lengths.forEach((l, s) => { if (l === length) codes[s] = code++; });
    code *= 2;
  }
  return codes;
}

function writeBlock(w: BitWriter, block: Block): void {
  const alphaSize = block.used.length + 2;
  const groups = block.groups ?? 2;
  w.put(0x314159, 24).put(0x265359, 24).put(block.crc, 32).put(block.randomised ? 1 : 0, 1).put(block.origPtr, 24);
  let ranges = 0;
  for (const b of block.used) ranges |= 0x8000 >>> (b >> 4);
  w.put(ranges, 16);
  for (let r = 0; r < 16; r++) {
    if (!(ranges & (0x8000 >>> r))) continue;
    let bits = 0;
    for (const b of block.used) if (b >> 4 === r) bits |= 0x8000 >>> (b & 15);
    w.put(bits, 16);
  }
  const selectors = block.selectors ?? Array.from({ length: Math.max(1, Math.ceil(block.symbols.length / 50)) }, (_, i) => i % 2);
  const order = Array.from({ length: groups }, (_, i) => i);
  const mtf = block.selectorMtf ?? selectors.map((g) => {
    const j = order.indexOf(g);
    order.splice(j, 1);
    order.unshift(g);
    return j;
  });
  w.put(groups, 3).put(mtf.length, 15);
  for (const j of mtf) w.bits(`${"1".repeat(j)}0`);
  const lengths = block.lengths ?? Array.from({ length: groups }, (_, g) => (g === 1 ? skewedLengths(alphaSize) : flatLengths(alphaSize)));
  if (block.lengthBits !== undefined) {
    w.bits(block.lengthBits);
  } else {
    for (const table of lengths) {
      let current = table[0]!;
      w.put(current, 5);
      for (const length of table) {
        for (; current < length; current++) w.bits("10");
        for (; current > length; current--) w.bits("11");
        w.bits("0");
      }
    }
  }
  const codes = lengths.map(canonicalCodes);
  block.symbols.forEach((symbol, i) => {
    const g = selectors[Math.floor(i / 50)] ?? 0;
    w.put(codes[g]![symbol]!, lengths[g]![symbol]!);
  });
  w.bits(block.tail ?? "");
}

/** A whole stream of `blocks`; the stream CRC is the right one unless given. */
function writeStream(blocks: Block[], level = 9, streamCrc?: number, header = `BZh${level}`): Buffer {
  const w = new BitWriter();
  for (const c of header) w.put(c.charCodeAt(0), 8);
  let combined = 0;
  for (const block of blocks) {
    writeBlock(w, block);
    combined = (((combined << 1) | (combined >>> 31)) ^ block.crc) >>> 0;
  }
  w.put(0x177245, 24).put(0x385090, 24).put(streamCrc ?? combined, 32);
  return w.done();
}

/** RLE1 as bzip2 applies it: 4 to 259 equal bytes become 4 and a count of the rest. */
function rle1(data: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < data.length;) {
    let n = 1;
    while (n < 259 && data[i + n] === data[i]) n++;
    for (let k = 0; k < Math.min(n, 4); k++) out.push(data[i]!);
    if (n >= 4) out.push(n - 4);
    i += n;
  }
  return out;
}

/** The low bits bzip2 0.9.0 flipped in a randomised block: at index i of the block when the mask says so. */
function randomMask(length: number): boolean[] {
  // bzip2's BZ2_rNums, first entries only: the test blocks are short.
  const rNums = [619, 720, 127, 481, 931, 816, 813, 233, 566, 247, 985, 724, 205, 454, 863, 491, 741, 242, 949, 214];
  const mask: boolean[] = [];
  let toGo = 0;
  let next = 0;
  for (let i = 0; i < length; i++) {
    if (toGo === 0) toGo = rNums[next++]!;
    toGo--;
    mask.push(toGo === 1);
  }
  return mask;
}

/** An honest block of `data` (short: the BWT here sorts rotations naively). */
function encodeBlock(data: Uint8Array, options: { randomise?: boolean } = {}): Block {
  const block = rle1(data);
  if (options.randomise) randomMask(block.length).forEach((flip, i) => { if (flip) block[i]! ^= 1; });
  const n = block.length;
  const rotations = Array.from({ length: n }, (_, i) => i);
  rotations.sort((a, b) => {
    for (let k = 0; k < n; k++) {
      const d = block[(a + k) % n]! - block[(b + k) % n]!;
      if (d) return d;
    }
    return 0;
  });
  const last = rotations.map((r) => block[(r + n - 1) % n]!);
  const used = [...new Set(block)].sort((a, b) => a - b);
  const order = [...used];
  const symbols: number[] = [];
  let zeros = 0;
  const flush = () => {
    // A run of the front byte in bijective base 2: RUNA = 1, RUNB = 2 times the digit's weight.
    for (let r = zeros - 1; zeros > 0; r = (r - 2) >> 1) {
      symbols.push(r & 1);
      if (r < 2) break;
    }
    zeros = 0;
  };
  for (const b of last) {
    const j = order.indexOf(b);
    if (j === 0) {
      zeros++;
      continue;
    }
    flush();
    symbols.push(j + 1);
    order.splice(j, 1);
    order.unshift(b);
  }
  flush();
  symbols.push(used.length + 1);
  return { crc: crc32(data), randomised: options.randomise, origPtr: rotations.indexOf(0), used, symbols };
}

describe("crafted streams", () => {
  const hello = Buffer.from("hello, hello, hello world\n");
  const good = encodeBlock(hello);

  test("the encoder here writes what bzip2 -d decodes, and so do we (flat, skewed and long codes)", async () => {
    for (const data of [hello, text(3000, 21), Buffer.concat([noise(1500, 22), Buffer.alloc(700), runs().subarray(0, 1500)])]) {
      const stream = writeStream([encodeBlock(data)]);
      assert.ok(referenceDecode(stream)?.equals(data), "bzip2 -d");
      assert.ok((await decode(stream)).equals(data), "ours");
    }
    const two = writeStream([good, encodeBlock(Buffer.from("more"))], 1);
    assert.equal((await decode(two)).toString(), `${hello}more`);
  });

  test("randomised blocks (bzip2 0.9.0) decode, as bzip2 -d decodes them", async () => {
    const data = text(5000, 23); // long enough for several flipped bytes
    const stream = writeStream([encodeBlock(data, { randomise: true })]);
    assert.ok(referenceDecode(stream)?.equals(data), "bzip2 -d");
    assert.ok((await decode(stream)).equals(data), "ours");
    // The same block without the flag does not pass.
    assertFails(await run(writeStream([{ ...encodeBlock(data, { randomise: true }), randomised: false }])), "corrupt", /^bzip2 stream is corrupt: block CRC mismatch/);
  });

  const cases: [string, Block | Buffer, string | RegExp][] = [
    ["block CRC", { ...good, crc: 0x12345678 }, `block CRC mismatch (got ${crc32(hello).toString(16)}, expected 12345678)`],
    ["stream CRC", writeStream([good], 9, 0xdeadbeef), `stream CRC mismatch (got ${crc32(hello).toString(16)}, expected deadbeef)`],
    ["stream magic", writeStream([good], 9, undefined, "BZx9"), "not a bzip2 stream (bad magic)"],
    ["block size 0", writeStream([good], 9, undefined, "BZh0"), "bad block size '0' in the stream header"],
    ["block magic", Buffer.concat([Buffer.from("BZh9"), Buffer.from("1AY&SX"), Buffer.alloc(20)]), "bad block magic 314159265358"],
    ["origin pointer", { ...good, origPtr: hello.length }, `BWT origin ${hello.length} outside a block of ${hello.length}`],
    ["empty block", { ...good, origPtr: 0, symbols: [good.used.length + 1] }, "BWT origin 0 outside a block of 0"],
    ["no byte values", { ...good, used: [], symbols: [1] }, "a block uses no byte values"],
    ["1 table", { ...good, groups: 1, selectors: [0] }, "1 Huffman tables (2 to 6 allowed)"],
    ["7 tables", { ...good, groups: 7, selectors: [0] }, "7 Huffman tables (2 to 6 allowed)"],
    ["no selectors", { ...good, selectorMtf: [] }, "no selectors"],
    ["selector beyond the tables", { ...good, selectorMtf: [2] }, "selector out of range"],
    ["code length 0", { ...good, lengthBits: "00000" }, "Huffman code length 0"],
    ["code length 21", { ...good, lengthBits: `10100${"10".repeat(2)}` }, "Huffman code length 21"],
    ["over-subscribed code", { ...good, lengths: [Array<number>(good.used.length + 2).fill(1), skewedLengths(good.used.length + 2)] },
      "Huffman code lengths over-subscribed"],
    // Lengths 2, 2, 2: "11" is no code.
    ["invalid code", { ...good, used: [0x61], lengths: [[2, 2, 2], [2, 2, 2]], symbols: [], tail: "11" }, "invalid Huffman code"],
    ["more symbols than selectors", { ...good, selectors: [0], symbols: [...Array<number>(50).fill(good.used.length), good.used.length + 1] },
      "more symbols than selectors"],
  ];
  for (const [name, block, detail] of cases) {
    test(`refused: ${name}`, async () => {
      const stream = Buffer.isBuffer(block) ? block : writeStream([block]);
      assertFails(await run(stream), "corrupt", detail);
      assertFails(await run(stream, 1, 1), "corrupt", detail, "fed byte by byte");
      if (name !== "over-subscribed code") assert.equal(referenceDecode(stream), undefined, "bzip2 -d refuses it too");
    });
  }

  test("refused: runs and literals beyond the block size of the stream header", async () => {
    const ab = { used: [0x61, 0x62], crc: 0, origPtr: 0 };
    // RUNB ×17: a run of 2^18 - 2 of the front byte, in a "BZh1" stream (100 000 bytes a block).
    assertFails(await run(writeStream([{ ...ab, symbols: [...Array<number>(17).fill(1), 3], selectors: [0] }], 1)), "corrupt", "a run longer than the block");
    // A run of exactly 100 000, then one more byte.
    const runOf = (n: number) => {
      const digits: number[] = [];
      for (let r = n - 1; ; r = (r - 2) >> 1) {
        digits.push(r & 1);
        if (r < 2) break;
      }
      return digits;
    };
    const full = [...runOf(100_000), 2, 3];
    assertFails(await run(writeStream([{ ...ab, symbols: full, selectors: [0] }], 1)), "corrupt", "a block longer than its stream header allows");
    // The same, ending after the run: a valid block of 100 000 bytes (ab[0] then aaaa.. through RLE1).
    const fits = writeStream([{ ...ab, symbols: [...runOf(100_000), 3], selectors: [0] }], 1);
    assertFails(await run(fits), "corrupt", /^bzip2 stream is corrupt: block CRC mismatch/);
  });

  test("code lengths that never end: corrupt once more than any block is buffered, not unbounded buffering", async () => {
    const w = new BitWriter();
    writeBlock(w, { ...good, lengthBits: "00101", symbols: [] });
    // "10" "11": up one, down one, forever; by hand up to a byte boundary, then whole bytes of it.
    let phase = 0;
    for (; w.bitLength % 8 !== 0; phase = (phase + 1) % 4) w.bits("1011"[phase]!);
    const endless = Buffer.concat([Buffer.from("BZh9"), w.done(), Buffer.alloc(4 << 20, parseInt("1011".repeat(3).slice(phase, phase + 8), 2))]);
    assertFails(await run(endless, 1 << 20, 4 << 20), "corrupt", "no block ends within 4194304 bytes");
    assertFails(await run(endless.subarray(0, 1 << 20)), "truncated");
  });
});
