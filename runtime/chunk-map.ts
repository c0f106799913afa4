// Which chunks of a lazy image are in its local copy: one bit per chunk, set once the chunk's bytes
// are written to the file, never cleared. The lazy image (lazy-image.ts) asks it whether a read can
// be served from the file, and its hydrator walks it for the next chunks still to fetch.
//
// 32 chunks a word: a 1 TiB image in 256 KiB chunks is 4 Mi chunks, a 512 KiB map, and the hydrator's
// search for the next missing chunk skips a full word (8 MiB of image) with one comparison.

const FULL = 0xffffffff;

export class ChunkMap {
  /** Bytes of the image. */
  readonly size: number;
  /** Bytes of a chunk; the last chunk holds what is left (size % chunkBytes, when not 0). */
  readonly chunkBytes: number;
  /** Chunks of the image: ceil(size / chunkBytes). */
  readonly count: number;
  readonly #words: Uint32Array;
  #local = 0;

  /**
   * An empty map (no chunk local) for an image of `size` bytes.
   *
   * @example const map = new ChunkMap(10 << 20, 256 << 10); map.count // 40
   */
  constructor(size: number, chunkBytes: number) {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`image size ${size} is not a byte count`);
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`chunk size ${chunkBytes} is not a byte count`);
    this.size = size;
    this.chunkBytes = chunkBytes;
    this.count = Math.ceil(size / chunkBytes);
    this.#words = new Uint32Array(Math.ceil(this.count / 32));
  }

  /** The chunk that holds byte `offset`. */
  chunkAt(offset: number): number {
    return Math.floor(offset / this.chunkBytes);
  }

  /** Where chunk `index` starts in the image. */
  offsetOf(index: number): number {
    return index * this.chunkBytes;
  }

  /** Where the chunks before `end` end in the image: offsetOf(end), but never past the image. */
  endOf(end: number): number {
    return Math.min(end * this.chunkBytes, this.size);
  }

  /** Whether chunk `index` is local. */
  has(index: number): boolean {
    return ((this.#words[index >>> 5]! >>> (index & 31)) & 1) === 1;
  }

  /**
   * Marks chunks `start` up to (not including) `end` local.
   *
   * @example map.mark(0, 4); map.has(3) // true
   */
  mark(start: number, end: number): void {
    if (start < 0 || end > this.count || start > end) throw new RangeError(`chunks ${start}-${end} are not within 0-${this.count}`);
    for (let index = start; index < end; index++) {
      const word = index >>> 5;
      const bits = this.#words[word]!;
      const bit = 1 << (index & 31);
      if ((bits & bit) === 0) {
        this.#words[word] = bits | bit;
        this.#local++;
      }
    }
  }

  /** Chunks that are local. */
  get localChunks(): number {
    return this.#local;
  }

  /** Bytes of the image that are local (the last chunk counts with its own length). */
  get localBytes(): number {
    const last = this.count - 1;
    if (last < 0) return 0;
    const short = this.has(last) ? this.count * this.chunkBytes - this.size : 0;
    return this.#local * this.chunkBytes - short;
  }

  /** Every chunk is local. */
  get complete(): boolean {
    return this.#local === this.count;
  }

  /**
   * The first chunk at or after `from` that is not local, or `count` when there is none.
   *
   * @example map.mark(0, 3); map.nextMissing(0) // 3
   */
  nextMissing(from: number): number {
    let index = Math.max(0, from);
    while (index < this.count) {
      const word = this.#words[index >>> 5]!;
      if ((index & 31) === 0 && word === FULL) {
        index += 32;
        continue;
      }
      if (((word >>> (index & 31)) & 1) === 0) return index;
      index++;
    }
    return this.count;
  }
}
