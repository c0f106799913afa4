// The raw image sink: writes a new file, leaving all-zero 4 KiB blocks as holes. The stream is cut
// into 2 MiB slices aligned to the file offset (slice-worker.ts); a worker thread scans each slice
// block by block against a zero block and writes the runs of non-zero blocks with one positional
// write each, so the main thread only receives and copies. When the bytes written are the bytes as
// served (an uncompressed image), the worker also hashes them: one pass, one copy, one thread for
// both. The final size is set with ftruncate, so trailing zeros cost nothing either.
import type { FileHandle } from "node:fs/promises";
import { Writable } from "node:stream";
import { openImageFile } from "./destination.ts";
import { explainWriteError } from "./ram-space.ts";
import { startSliceWorker, type SliceWorker } from "./slice-worker.ts";

const SLICE = 2 * 1024 * 1024;
const SLICES = 3;

/** The worker's job: hash (optionally), then write the non-zero 4 KiB block runs at their offsets. */
const SPARSE_WRITE_JOB = `({ fd, hash }) => {
  const { writeSync } = require("node:fs");
  const sha256 = hash ? require("node:crypto").createHash("sha256") : undefined;
  const BLOCK = 4096;
  const zero = Buffer.alloc(BLOCK);
  let dataBytes = 0;
  const writeAll = (bytes, from, to, offset) => {
    for (let at = from; at < to;) at += writeSync(fd, bytes, at, to - at, offset + at);
    dataBytes += to - from;
  };
  return {
    slice(view, offset) {
      if (sha256) sha256.update(view);
      const bytes = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
      let runStart = -1;
      for (let at = 0; at < bytes.length; at += BLOCK) {
        const n = Math.min(BLOCK, bytes.length - at);
        const isZero = bytes.compare(zero, 0, n, at, at + n) === 0;
        if (!isZero && runStart < 0) runStart = at;
        if (isZero && runStart >= 0) { writeAll(bytes, runStart, at, offset); runStart = -1; }
      }
      if (runStart >= 0) writeAll(bytes, runStart, bytes.length, offset);
    },
    finish: () => ({ dataBytes, sha256: sha256 && sha256.digest("hex") }),
  };
}`;

/** What ended up on disk: the file's size and what it really occupies. */
export interface SparseFileResult {
  apparentSize: number;
  allocatedBytes: number;
  dataBytesWritten: number;
  /** The SHA-256 of everything written, when the sink was asked to hash. */
  sha256?: string;
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
  /** Also compute the SHA-256 of the bytes written (result.sha256). */
  hash?: boolean;
}

/**
 * A Writable that writes the stream sparsely into `path`: a new file, or the empty one the pull created
 * (exclusively, as its temporary); a symlink there is refused (O_NOFOLLOW).
 *
 * ```ts
 * const sink = createSparseFileSink("/run/machines/.image.raw.partial", { hash: true });
 * await pipeline(body, sink);
 * console.log(sink.result); // { apparentSize, allocatedBytes, dataBytesWritten, sha256 }
 * ```
 */
export function createSparseFileSink(path: string, options: SparseFileSinkOptions = {}): SparseFileSink {
  let file: FileHandle | undefined;
  let writer: SliceWorker | undefined;
  let received = 0;
  let result: SparseFileResult | undefined;

  const fail = (error: unknown) => explainWriteError(error, path, received);

  const sink = new Writable({
    highWaterMark: 1024 * 1024,
    construct(callback) {
      openImageFile(path, options.mode).then((handle) => {
        file = handle;
        writer = startSliceWorker({
          job: SPARSE_WRITE_JOB, data: { fd: handle.fd, hash: options.hash === true }, sliceSize: SLICE, slices: SLICES,
          describeError: ({ message, code }) => fail(Object.assign(new Error(message), { code })),
        });
        callback();
      }, (error) => callback(fail(error)));
    },
    write(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      writer!.write(chunk, (error) => callback(error));
    },
    final(callback) {
      (async () => {
        const done = (await writer!.finish()) as { dataBytes: number; sha256?: string };
        await writer!.close();
        await file!.truncate(received);
        if (options.fsync) await file!.sync();
        const stat = await file!.stat();
        result = { apparentSize: stat.size, allocatedBytes: stat.blocks * 512, dataBytesWritten: done.dataBytes, sha256: done.sha256 };
        await file!.close();
        file = undefined;
      })().then(() => callback(), (error) => callback(fail(error)));
    },
    destroy(error, callback) {
      const handle = file;
      file = undefined;
      // The worker may be inside a write to this descriptor: close it only once the thread stopped.
      Promise.resolve(writer?.close()).then(() => handle?.close()).then(() => callback(error), () => callback(error));
    },
  });
  Object.defineProperties(sink, {
    bytesWritten: { get: () => received },
    result: { get: () => result },
  });
  return sink as SparseFileSink;
}
