// Splits a zstd stream into its frames. Node's zlib zstd decoder stops at the end of the first frame
// ("Unknown frame descriptor" on the next one), but pzstd, `zstd -T` with --rsyncable and plain `cat`
// produce several; so each frame gets its own decoder. Only headers are parsed: data is sliced, not copied.

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

/** A slice of one frame's bytes; `last` marks the slice that completes the frame. */
export interface FramePiece {
  data: Buffer;
  skippable: boolean;
  last: boolean;
}

type State =
  | { kind: "frame-header" }
  | { kind: "block-header" }
  | { kind: "copy"; left: number; then: "block-header" | "checksum" | "frame-header" }
  | { kind: "skip"; left: number };

/** The decoded size a zstd frame header states (Frame_Content_Size), if it states one. */
export function zstdFrameContentSize(head: Uint8Array): number | undefined {
  const header = parseFrameHeader(Buffer.from(head.buffer, head.byteOffset, head.byteLength));
  return header && "contentSize" in header ? header.contentSize : undefined;
}

interface FrameHeader { length: number; checksum: boolean; contentSize?: number }

/** Parses a frame header at the start of `buf`; undefined when more bytes are needed. */
function parseFrameHeader(buf: Buffer): FrameHeader | undefined {
  if (buf.length < 5) return undefined;
  const magic = buf.readUInt32LE(0);
  if (magic !== ZSTD_MAGIC) throw new Error(`zstd stream is corrupt: bad frame magic 0x${magic.toString(16)}`);
  const descriptor = buf[4]!;
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor & 0x20) !== 0;
  const checksum = (descriptor & 0x04) !== 0;
  const dictIdSize = [0, 1, 2, 4][descriptor & 3]!;
  const fcsSize = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
  const length = 5 + (singleSegment ? 0 : 1) + dictIdSize + fcsSize;
  if (buf.length < length) return undefined;
  const at = length - fcsSize;
  let contentSize: number | undefined;
  if (fcsSize === 1) contentSize = buf[at]!;
  else if (fcsSize === 2) contentSize = buf.readUInt16LE(at) + 256;
  else if (fcsSize === 4) contentSize = buf.readUInt32LE(at);
  else if (fcsSize === 8) contentSize = Number(buf.readBigUInt64LE(at));
  return contentSize === undefined ? { length, checksum } : { length, checksum, contentSize };
}

/**
 * Cuts a byte stream at zstd frame boundaries.
 *
 * ```ts
 * const splitter = new ZstdFrameSplitter();
 * for (const piece of splitter.push(chunk)) if (!piece.skippable) decoder.write(piece.data);
 * ```
 */
export class ZstdFrameSplitter {
  #state: State = { kind: "frame-header" };
  #held: Buffer = Buffer.alloc(0);
  #checksum = false;
  #frames = 0;

  /** True when the bytes so far end exactly at a frame boundary. */
  get atFrameBoundary(): boolean {
    return this.#state.kind === "frame-header" && this.#held.length === 0;
  }

  get frames(): number {
    return this.#frames;
  }

  push(chunk: Buffer): FramePiece[] {
    const pieces: FramePiece[] = [];
    const buf = this.#held.length ? Buffer.concat([this.#held, chunk]) : chunk;
    this.#held = Buffer.alloc(0);
    let start = 0; // start of the not yet emitted part of the current frame inside buf
    let at = 0;
    const emit = (last: boolean, skippable = false) => {
      if (at > start || last) pieces.push({ data: buf.subarray(start, at), skippable, last });
      start = at;
    };
    for (;;) {
      const state = this.#state;
      if (state.kind === "copy" || state.kind === "skip") {
        const take = Math.min(state.left, buf.length - at);
        at += take;
        state.left -= take;
        if (state.left > 0) break;
        if (state.kind === "skip") {
          emit(true, true);
          this.#state = { kind: "frame-header" };
        } else if (state.then === "checksum") {
          this.#state = { kind: "copy", left: this.#checksum ? 4 : 0, then: "frame-header" };
        } else if (state.then === "frame-header") {
          emit(true);
          this.#frames++;
          this.#state = { kind: "frame-header" };
        } else {
          this.#state = { kind: "block-header" };
        }
        continue;
      }
      if (state.kind === "frame-header") {
        if (buf.length - at < 8) break; // magic + skippable size, or enough to know the header length
        const magic = buf.readUInt32LE(at);
        if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
          this.#state = { kind: "skip", left: 8 + buf.readUInt32LE(at + 4) };
          continue;
        }
        const header = parseFrameHeader(buf.subarray(at));
        if (!header) break;
        this.#checksum = header.checksum;
        at += header.length;
        this.#state = { kind: "block-header" };
        continue;
      }
      // block header: 3 bytes, little endian: last flag, type, size
      if (buf.length - at < 3) break;
      const value = buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16);
      const last = (value & 1) === 1;
      const type = (value >> 1) & 3;
      const size = value >>> 3;
      if (type === 3) throw new Error("zstd stream is corrupt: reserved block type");
      at += 3;
      this.#state = { kind: "copy", left: type === 1 ? 1 : size, then: last ? "checksum" : "block-header" };
    }
    // An incomplete header waits for the next push; everything before it belongs to the current frame.
    if (this.#state.kind === "frame-header" || this.#state.kind === "block-header") {
      emit(false);
      this.#held = Buffer.from(buf.subarray(at));
      return pieces;
    }
    emit(false, this.#state.kind === "skip");
    return pieces;
  }
}
