// A pass-through stage that computes the SHA-256 of the bytes flowing through it (the file as served,
// before decoding), so verification never needs a second pass over the image.
//
// With more than one CPU the hashing runs on a worker thread: SHA-256 (~2 GB/s with SHA-NI) costs
// about as much as everything else a raw pull does on the main thread. Chunks are copied into a few
// plain 2 MiB slices (a memcpy, ~20× cheaper than hashing them) that are *transferred* to the worker
// and back: no shared memory, whose copies V8 makes with a slow atomics-safe loop. When every slice
// is with the worker, the stream waits: a slow hash applies backpressure instead of growing memory.
import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { Transform, type TransformCallback } from "node:stream";
import { Worker } from "node:worker_threads";

const SLICE_SIZE = 2 * 1024 * 1024;
const SLICES = 3;

const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const hash = require("node:crypto").createHash("sha256");
parentPort.on("message", (message) => {
  if (message === "end") return parentPort.postMessage(hash.digest("hex"));
  hash.update(new Uint8Array(message.buffer, 0, message.length));
  parentPort.postMessage(message.buffer, [message.buffer]);
});
`;

/** Where the SHA-256 is computed: both give the same digest. */
export type HashPlacement = "worker" | "inline";

interface Hasher {
  update(chunk: Buffer, done: (error?: Error) => void): void;
  digest(done: (error: Error | undefined, hex?: string) => void): void;
  close(): void;
}

function inlineHasher(): Hasher {
  const hash = createHash("sha256");
  return {
    update: (chunk, done) => { hash.update(chunk); done(); },
    digest: (done) => done(undefined, hash.digest("hex")),
    close: () => {},
  };
}

function workerHasher(): Hasher {
  const worker = new Worker(WORKER_SOURCE, { eval: true, stdout: false, stderr: false });
  const free: ArrayBuffer[] = Array.from({ length: SLICES }, () => new ArrayBuffer(SLICE_SIZE));
  let slice: Uint8Array | undefined;
  let filled = 0;
  let failure: Error | undefined;
  let waiting: (() => void) | undefined;
  let digestWanted: ((error: Error | undefined, hex?: string) => void) | undefined;

  const fail = (error: Error) => {
    failure ??= error;
    const [wait, want] = [waiting, digestWanted];
    waiting = digestWanted = undefined;
    wait?.();
    want?.(failure);
  };
  worker.on("message", (message: ArrayBuffer | string) => {
    if (typeof message === "string") {
      const want = digestWanted;
      digestWanted = undefined;
      want?.(undefined, message);
      return;
    }
    free.push(message);
    const wait = waiting;
    waiting = undefined;
    wait?.();
  });
  worker.on("error", (error) => fail(new Error(`sha256 worker failed: ${error.message}`, { cause: error })));
  worker.on("exit", (code) => fail(new Error(`sha256 worker exited early (status ${code})`)));

  const send = () => {
    if (!slice || filled === 0) return;
    const buffer = slice.buffer as ArrayBuffer;
    worker.postMessage({ buffer, length: filled }, [buffer]);
    slice = undefined;
    filled = 0;
  };
  const copy = (chunk: Buffer, offset: number, done: (error?: Error) => void): void => {
    while (offset < chunk.length) {
      if (failure) return done(failure);
      if (!slice) {
        const buffer = free.pop();
        if (!buffer) {
          waiting = () => copy(chunk, offset, done);
          return;
        }
        slice = new Uint8Array(buffer);
      }
      const n = Math.min(chunk.length - offset, SLICE_SIZE - filled);
      slice.set(chunk.subarray(offset, offset + n), filled);
      filled += n;
      offset += n;
      if (filled === SLICE_SIZE) send();
    }
    done();
  };
  return {
    update: (chunk, done) => copy(chunk, 0, done),
    digest: (done) => {
      if (failure) return done(failure);
      send();
      digestWanted = done;
      worker.postMessage("end");
    },
    close: () => {
      worker.removeAllListeners("exit");
      void worker.terminate();
    },
  };
}

export class HashTee extends Transform {
  readonly #hasher: Hasher;
  #digest: string | undefined;
  #bytes = 0;

  constructor(placement: HashPlacement) {
    super();
    this.#hasher = placement === "worker" ? workerHasher() : inlineHasher();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    this.#hasher.update(chunk, (error) => (error ? callback(error) : callback(null, chunk)));
  }

  override _flush(callback: TransformCallback): void {
    this.#hasher.digest((error, hex) => {
      this.#hasher.close();
      if (error) return callback(error);
      this.#digest = hex;
      callback();
    });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#hasher.close();
    callback(error);
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The lowercase hex SHA-256 of everything that passed; throws before the stream ended. */
  digest(): string {
    if (this.#digest === undefined) throw new Error("hash-tee: digest requested before the end of the stream");
    return this.#digest;
  }
}

/**
 * A pass-through Transform that hashes what flows through it; on a worker thread when the machine
 * has a second CPU (`placement` overrides).
 *
 * @example
 * const tee = createHashTee();
 * await pipeline(source, tee, sink);
 * tee.digest(); // "e3b0c442…"
 */
export function createHashTee(placement: HashPlacement = availableParallelism() > 1 ? "worker" : "inline"): HashTee {
  return new HashTee(placement);
}
