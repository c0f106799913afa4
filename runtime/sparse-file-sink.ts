// The raw image sink: writes a new file, leaving all-zero 4 KiB blocks as holes. Data is staged in 4 MiB
// slices aligned to the file offset; each slice is scanned block by block with memcmp against a zero
// block, and the runs of non-zero blocks go out with one positional write each. Two slices alternate,
// so one is written while the next fills: the download never waits for the disk unless the disk is
// the slower of the two. The final size is set with ftruncate, so trailing zeros cost nothing either.
import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { Writable } from "node:stream";
import { explainWriteError } from "./ram-space.ts";

const BLOCK = 4096;
const SLICE = 4 * 1024 * 1024;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

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

/**
 * A Writable that creates `path` (O_CREAT|O_EXCL: it must not exist) and writes the stream into it sparsely.
 *
 * ```ts
 * const sink = createSparseFileSink("/run/machines/.image.raw.partial");
 * await pipeline(body, createDecoder(), sink);
 * console.log(sink.result); // { apparentSize, allocatedBytes, dataBytesWritten }
 * ```
 */
export function createSparseFileSink(path: string, options: SparseFileSinkOptions = {}): SparseFileSink {
  let file: FileHandle | undefined;
  const slices = [Buffer.allocUnsafe(SLICE), Buffer.allocUnsafe(SLICE)];
  let slice = slices[0]!;  // the slice being filled
  let filled = 0;          // bytes staged in `slice`
  let sliceOffset = 0;     // file offset of slice[0], always a multiple of BLOCK
  let flushing: Promise<void> | undefined; // the other slice, on its way to the file
  let received = 0;
  let dataBytes = 0;
  let result: SparseFileResult | undefined;

  const fail = (error: unknown) => explainWriteError(error, path, received);

  /** Writes the non-zero block runs of buffer[0, length) at file offset `offset`. */
  async function flushSlice(buffer: Buffer, offset: number, length: number): Promise<void> {
    let runStart = -1;
    for (let at = 0; at < length; at += BLOCK) {
      const n = Math.min(BLOCK, length - at);
      const zero = buffer.compare(ZERO_BLOCK, 0, n, at, at + n) === 0;
      if (!zero && runStart < 0) runStart = at;
      if (zero && runStart >= 0) {
        await writeAll(buffer, offset, runStart, at);
        runStart = -1;
      }
    }
    if (runStart >= 0) await writeAll(buffer, offset, runStart, length);
  }

  async function writeAll(buffer: Buffer, offset: number, from: number, to: number): Promise<void> {
    let at = from;
    while (at < to) {
      const { bytesWritten } = await file!.write(buffer, at, to - at, offset + at);
      at += bytesWritten;
    }
    dataBytes += to - from;
  }

  /** Sends the full slice to the file in the background and switches to the other one. */
  async function rotate(): Promise<void> {
    if (flushing) await flushing;
    flushing = flushSlice(slice, sliceOffset, SLICE);
    flushing.catch(() => {}); // awaited (and rethrown) by the next rotate() or by final()
    slice = slice === slices[0] ? slices[1]! : slices[0]!;
    sliceOffset += SLICE;
    filled = 0;
  }

  const sink = new Writable({
    highWaterMark: 1024 * 1024,
    construct(callback) {
      open(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, options.mode ?? 0o644)
        .then((handle) => { file = handle; callback(); }, (error) => callback(fail(error)));
    },
    write(chunk: Buffer, _encoding, callback) {
      (async () => {
        let at = 0;
        while (at < chunk.length) {
          const n = Math.min(SLICE - filled, chunk.length - at);
          chunk.copy(slice, filled, at, at + n);
          filled += n;
          at += n;
          if (filled === SLICE) await rotate();
        }
        received += chunk.length;
      })().then(() => callback(), (error) => callback(fail(error)));
    },
    final(callback) {
      (async () => {
        if (flushing) await flushing;
        await flushSlice(slice, sliceOffset, filled);
        await file!.truncate(received);
        if (options.fsync) await file!.sync();
        const stat = await file!.stat();
        result = { apparentSize: stat.size, allocatedBytes: stat.blocks * 512, dataBytesWritten: dataBytes };
        await file!.close();
        file = undefined;
      })().then(() => callback(), (error) => callback(fail(error)));
    },
    destroy(error, callback) {
      const handle = file;
      file = undefined;
      if (!handle) return callback(error);
      // Let a background write finish before closing the file it writes to.
      Promise.resolve(flushing).catch(() => {}).then(() => handle.close()).then(() => callback(error), () => callback(error));
    },
  });
  Object.defineProperties(sink, {
    bytesWritten: { get: () => received },
    result: { get: () => result },
  });
  return sink as SparseFileSink;
}
