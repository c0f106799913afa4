// The raw image sink: writes a new file, leaving all-zero 4 KiB blocks (aligned to the file offset) as
// holes, and sets the final size with ftruncate, so trailing zeros cost nothing either.
//
// The chunks it is given are written as they are, never copied: they are gathered into batches of
// about 1 MiB, each batch is scanned block by block against a zero block (a memcmp that stops at the
// first non-zero byte), and each run of non-zero blocks goes to the kernel with one positional
// writev() on libuv's thread pool. The copy into the page cache, the one expensive step, so runs on
// another core while the main thread receives the next megabyte; no worker thread, no copy between
// threads. Up to IN_FLIGHT batches are being written at once; then write() waits (backpressure).
import type { FileHandle } from "node:fs/promises";
import { Writable } from "node:stream";
import { openImageFile } from "./destination.ts";
import { explainWriteError } from "./ram-space.ts";

const BLOCK = 4096;
const BATCH = 1 << 20;
const IN_FLIGHT = 4;
/** More pieces than this in one run (a stream of tiny chunks) are joined first: writev takes at most 1024. */
const MAX_PIECES = 64;
const ZERO = Buffer.alloc(BLOCK);

/** What ended up on disk: the file's size and what it really occupies. */
export interface SparseFileResult {
  apparentSize: number;
  allocatedBytes: number;
  dataBytesWritten: number;
}

export interface SparseFileSink extends Writable {
  /** Bytes received so far (the file's size once finished). */
  readonly bytesWritten: number;
  /** Set once 'finish' has been emitted. */
  readonly result: SparseFileResult | undefined;
}

export interface SparseFileSinkOptions {
  mode?: number;
  /** fsync before closing (off by default: the initrd's /run is RAM anyway). */
  fsync?: boolean;
}

/** A run of non-zero blocks: where it starts in the file, and its bytes as slices of the chunks. */
interface Run {
  position: number;
  pieces: Buffer[];
  length: number;
}

/**
 * The runs of non-zero blocks in `pieces`, which hold the file's bytes from `position` on (a multiple
 * of BLOCK): each block is compared with zeros where it lies, across chunk boundaries.
 */
export function nonZeroRuns(pieces: readonly Buffer[], position: number): Run[] {
  const runs: Run[] = [];
  let run: Run | undefined;
  let piece = 0;
  let at = 0; // offset in pieces[piece]
  let offset = position;
  for (;;) {
    // One block: its parts in the chunks it spans, and whether any of them holds a non-zero byte.
    const parts: [number, number, number][] = [];
    let left = BLOCK;
    let zero = true;
    while (left > 0 && piece < pieces.length) {
      const chunk = pieces[piece]!;
      const n = Math.min(left, chunk.length - at);
      if (n > 0) {
        if (zero && chunk.compare(ZERO, 0, n, at, at + n) !== 0) zero = false;
        parts.push([piece, at, at + n]);
        at += n;
        left -= n;
      }
      if (at === chunk.length) {
        piece++;
        at = 0;
      }
    }
    const length = BLOCK - left;
    if (length === 0) break;
    if (zero) {
      run = undefined;
    } else {
      if (!run) {
        run = { position: offset, pieces: [], length: 0 };
        runs.push(run);
      }
      for (const [index, start, end] of parts) {
        const chunk = pieces[index]!;
        const last = run.pieces.at(-1);
        // A part that continues the previous one in the same chunk widens it instead of adding a piece.
        if (last && last.buffer === chunk.buffer && last.byteOffset + last.length === chunk.byteOffset + start) {
          run.pieces[run.pieces.length - 1] = Buffer.from(chunk.buffer, last.byteOffset, last.length + end - start);
        } else {
          run.pieces.push(chunk.subarray(start, end));
        }
        run.length += end - start;
      }
    }
    offset += length;
  }
  return runs;
}

/** Writes every byte of `run` at its position. */
async function writeRun(file: FileHandle, run: Run): Promise<void> {
  const pieces = run.pieces.length > MAX_PIECES ? [Buffer.concat(run.pieces, run.length)] : run.pieces;
  let { bytesWritten: done } = await file.writev(pieces, run.position);
  if (done === run.length) return;
  // A short write (rare: a signal, a file system filling up): the rest in one buffer, until done or an error.
  const rest = Buffer.concat(pieces, run.length);
  while (done < run.length) {
    const { bytesWritten } = await file.write(rest, done, run.length - done, run.position + done);
    if (bytesWritten === 0) throw Object.assign(new Error(`no progress writing ${run.length - done} bytes`), { code: "EIO" });
    done += bytesWritten;
  }
}

/**
 * A Writable that writes the stream sparsely into `path`: a new file, or the empty one the pull created
 * (exclusively, as its temporary); a symlink there is refused (O_NOFOLLOW).
 *
 * ```ts
 * const sink = createSparseFileSink("/run/machines/.#os.raw.1a2b3c4d");
 * await pipeline(body, sink);
 * console.log(sink.result); // { apparentSize, allocatedBytes, dataBytesWritten }
 * ```
 */
export function createSparseFileSink(path: string, options: SparseFileSinkOptions = {}): SparseFileSink {
  let file: FileHandle | undefined;
  let received = 0;
  let dataBytes = 0;
  let result: SparseFileResult | undefined;
  // The bytes received but not yet handed to a write: the file's bytes from `batchStart` on.
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let batchStart = 0;
  const writing = new Set<Promise<void>>();
  let failure: Error | undefined;
  let wake: (() => void) | undefined;

  const fail = (error: unknown) => explainWriteError(error, path, received);

  /** Hands the first `length` bytes of the batch (all of it when undefined) to a write. */
  const send = (length = batchBytes) => {
    const pieces: Buffer[] = [];
    let taken = 0;
    while (taken < length) {
      const chunk = batch[0]!;
      const n = Math.min(chunk.length, length - taken);
      pieces.push(n === chunk.length ? chunk : chunk.subarray(0, n));
      if (n === chunk.length) batch.shift();
      else batch[0] = chunk.subarray(n);
      taken += n;
    }
    const runs = nonZeroRuns(pieces, batchStart);
    batchStart += length;
    batchBytes -= length;
    const handle = file!;
    const written = (async () => {
      for (const run of runs) {
        await writeRun(handle, run);
        dataBytes += run.length;
      }
    })().catch((error: unknown) => { failure ??= fail(error); }).finally(() => {
      writing.delete(written);
      const waiting = wake;
      wake = undefined;
      waiting?.();
    });
    writing.add(written);
  };

  /** Resolves once fewer than `most` writes are in flight (or one failed). */
  const room = async (most: number) => {
    while (writing.size >= Math.max(most, 1) && !failure) await new Promise<void>((resolve) => { wake = resolve; });
    if (most === 0) await Promise.all(writing);
  };

  const sink = new Writable({
    highWaterMark: 1024 * 1024,
    construct(callback) {
      openImageFile(path, options.mode).then((handle) => {
        file = handle;
        callback();
      }, (error) => callback(fail(error)));
    },
    write(chunk: Buffer, _encoding, callback) {
      if (failure) return callback(failure);
      received += chunk.length;
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes < BATCH) return callback();
      // Only whole blocks leave: a block cut between two batches could not be told zero.
      send(batchBytes - ((batchStart + batchBytes) % BLOCK));
      if (writing.size < IN_FLIGHT) return callback();
      room(IN_FLIGHT).then(() => callback(failure));
    },
    final(callback) {
      (async () => {
        if (batchBytes > 0 && !failure) send();
        await room(0);
        if (failure) throw failure;
        const handle = file!;
        await handle.truncate(received);
        if (options.fsync) await handle.sync();
        const stat = await handle.stat();
        result = { apparentSize: stat.size, allocatedBytes: stat.blocks * 512, dataBytesWritten: dataBytes };
        file = undefined;
        await handle.close();
      })().then(() => callback(), (error: unknown) => callback(error === failure ? failure : fail(error)));
    },
    destroy(error, callback) {
      const handle = file;
      file = undefined;
      batch = [];
      // A write on the thread pool may still use the descriptor: close it only once they are done.
      Promise.all(writing).then(() => handle?.close()).then(() => callback(error), () => callback(error));
    },
  });
  Object.defineProperties(sink, {
    bytesWritten: { get: () => received },
    result: { get: () => result },
  });
  return sink as SparseFileSink;
}
