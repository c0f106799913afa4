// Bytes received from a stream and not consumed yet, as a list of the chunks as they came: taking a
// prefix cuts a chunk without copying when it lies in one, so a parser pays for copies only at chunk
// boundaries.
//
// ```ts
// const queue = new ByteQueue();
// socket.on("data", (chunk) => queue.push(chunk));
// if (queue.length >= 28) parse(queue.take(28));
// ```
/** The bytes received and not yet parsed: a list of chunks, cut without copying where possible. */
export class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Removes the first `n` bytes (n ≤ length); copies only when they span chunks (n is at most 64 KiB). */
  take(n: number): Buffer {
    const first = this.chunks[0];
    if (n === 0 || !first) return Buffer.alloc(0);
    this.length -= n;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    for (let filled = 0; filled < n; ) {
      const chunk = this.chunks[0]!;
      const part = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, part);
      if (part === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(part);
      filled += part;
    }
    return out;
  }

  /** Drops up to `n` bytes; returns how many it dropped. */
  skip(n: number): number {
    let skipped = 0;
    while (skipped < n && this.chunks.length > 0) {
      const chunk = this.chunks[0]!;
      const part = Math.min(chunk.length, n - skipped);
      if (part === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(part);
      skipped += part;
    }
    this.length -= skipped;
    return skipped;
  }

  clear(): void {
    this.chunks = [];
    this.length = 0;
  }
}
