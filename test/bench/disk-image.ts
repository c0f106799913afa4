// Writes a deterministic, disk-like raw image: runs of zeros (free space), random bytes (already
// compressed files), pseudo-text (configs, docs, scripts) and low-entropy binary (executables), in
// 4 KiB-aligned extents of 4 KiB to 4 MiB, mixed the way a real file system image mixes them.
// Zero runs are left as holes, so the cached image costs disk only for its data.
import { createCipheriv } from "node:crypto";
import { closeSync, ftruncateSync, openSync, renameSync, writeSync } from "node:fs";

export const BLOCK = 4096;
const MAX_EXTENT_BLOCKS = 1024;

/** Share of the image's bytes per kind of extent. */
export const MIX = { zero: 0.4, random: 0.2, text: 0.25, binary: 0.15 } as const;
export type ExtentKind = keyof typeof MIX;

/** A small seeded PRNG (mulberry32): the same seed always gives the same image. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The kind and length (in bytes) of each extent of an image of `size` bytes, in order. */
export function* extents(size: number, seed = 1): Generator<{ kind: ExtentKind; length: number }> {
  const random = prng(seed);
  const kinds = Object.keys(MIX) as ExtentKind[];
  let left = size;
  while (left > 0) {
    let pick = random();
    let kind: ExtentKind = "zero";
    for (const k of kinds) {
      if (pick < MIX[k]) { kind = k; break; }
      pick -= MIX[k];
    }
    // Log-uniform lengths: many small files, a few big ones, as on a real file system.
    const blocks = Math.max(1, Math.floor(Math.exp(random() * Math.log(MAX_EXTENT_BLOCKS + 1))));
    const length = Math.min(left, blocks * BLOCK);
    left -= length;
    yield { kind, length };
  }
}

/** Deterministic random bytes: an AES-CTR keystream. */
function keystream(seed: number): (length: number) => Buffer {
  const key = Buffer.alloc(16);
  key.writeUInt32BE(seed);
  const cipher = createCipheriv("aes-128-ctr", key, Buffer.alloc(16));
  const zeros = Buffer.alloc(MAX_EXTENT_BLOCKS * BLOCK);
  return (length) => cipher.update(zeros.subarray(0, length));
}

/** A vocabulary of pseudo-words, picked with a skewed distribution so text compresses like text. */
function textWriter(seed: number): (length: number) => Buffer {
  const random = prng(seed ^ 0x5eed);
  const letters = "etaoinshrdlcumwfgypbvkjxqz";
  const words: Buffer[] = [];
  for (let i = 0; i < 8192; i++) {
    const n = 1 + Math.floor(random() * random() * 12);
    let word = "";
    for (let j = 0; j < n; j++) word += letters[Math.floor(random() * random() * letters.length)];
    words.push(Buffer.from(word));
  }
  const separators = [" ", " ", " ", " ", " ", ", ", ". ", "\n", "=", "/", "_", "\t"].map((s) => Buffer.from(s));
  return (length) => {
    const out = Buffer.allocUnsafe(length);
    let at = 0;
    while (at < length) {
      const word = words[Math.floor(random() ** 3 * words.length)]!;
      at += word.copy(out, at);
      if (at < length) at += separators[Math.floor(random() * separators.length)]!.copy(out, at);
    }
    return out;
  };
}

/** Bytes like machine code and data tables: about half zero bytes, the rest small values. */
function binaryFrom(bytes: Buffer): Buffer {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    bytes[i] = b < 128 ? 0 : b & 0x3f;
  }
  return bytes;
}

/**
 * Writes the image to `path` (via a temporary file, renamed into place when complete).
 * @example writeDiskImage("/tmp/disk.raw", 256 * 1024 * 1024);
 */
export function writeDiskImage(path: string, size: number, seed = 1): void {
  const random = keystream(seed);
  const text = textWriter(seed);
  const partial = `${path}.partial`;
  const fd = openSync(partial, "w");
  try {
    let position = 0;
    for (const { kind, length } of extents(size, seed)) {
      if (kind !== "zero") {
        const data = kind === "text" ? text(length) : kind === "random" ? random(length) : binaryFrom(random(length));
        writeSync(fd, data, 0, length, position);
      }
      position += length;
    }
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
  renameSync(partial, path);
}
