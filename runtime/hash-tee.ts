// A pass-through stage that computes the SHA-256 of the bytes flowing through it (the file as served,
// before decoding), so verification never needs a second pass over the image.
//
// The hashing runs on a worker thread: SHA-256 costs about as much CPU as everything else in a raw
// pull together, and the machine has a second core. Chunks are copied (a memcpy, an order of
// magnitude cheaper than hashing them) into slots of a SharedArrayBuffer the worker hashes from; only
// slot numbers cross the thread boundary. When every slot is waiting for the worker, the stream waits
// too: a slow hash applies backpressure instead of growing memory.
import { Transform, type TransformCallback } from "node:stream";
import { Worker } from "node:worker_threads";

const SLOT_SIZE = 1024 * 1024;
const SLOTS = 4;

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const hash = createHash("sha256");
const memory = new Uint8Array(workerData);
parentPort.on("message", (message) => {
  if (message === "end") {
    parentPort.postMessage({ digest: hash.digest("hex") });
  } else {
    const [slot, length] = message;
    hash.update(memory.subarray(slot * ${SLOT_SIZE}, slot * ${SLOT_SIZE} + length));
    parentPort.postMessage({ slot });
  }
});
`;

export class HashTee extends Transform {
  readonly #memory = new SharedArrayBuffer(SLOT_SIZE * SLOTS);
  readonly #view = new Uint8Array(this.#memory);
  readonly #worker = new Worker(WORKER_SOURCE, { eval: true, workerData: this.#memory });
  readonly #free: number[] = Array.from({ length: SLOTS }, (_, i) => i);
  #slot: number | undefined;
  #filled = 0;
  #digest: string | undefined;
  #bytes = 0;
  #waiting: (() => void) | undefined;
  #finished: ((digest: string) => void) | undefined;
  #failure: Error | undefined;

  constructor() {
    super();
    this.#worker.on("message", (message: { slot?: number; digest?: string }) => {
      if (message.slot !== undefined) {
        this.#free.push(message.slot);
        const waiting = this.#waiting;
        this.#waiting = undefined;
        waiting?.();
      } else if (message.digest !== undefined) {
        this.#finished?.(message.digest);
      }
    });
    this.#worker.on("error", (error) => {
      this.#failure = error;
      this.destroy(error);
    });
  }

  /** Hands the filled slot to the worker. */
  #send(): void {
    if (this.#slot === undefined || this.#filled === 0) return;
    this.#worker.postMessage([this.#slot, this.#filled]);
    this.#slot = undefined;
    this.#filled = 0;
  }

  /** Copies `chunk` from `offset` into slots; calls `done` once all of it is copied. */
  #copy(chunk: Buffer, offset: number, done: (error?: Error | null) => void): void {
    while (offset < chunk.length) {
      if (this.#failure) return done(this.#failure);
      if (this.#slot === undefined) {
        const slot = this.#free.pop();
        if (slot === undefined) {
          this.#waiting = () => this.#copy(chunk, offset, done);
          return;
        }
        this.#slot = slot;
      }
      const n = Math.min(chunk.length - offset, SLOT_SIZE - this.#filled);
      this.#view.set(chunk.subarray(offset, offset + n), this.#slot * SLOT_SIZE + this.#filled);
      this.#filled += n;
      offset += n;
      if (this.#filled === SLOT_SIZE) this.#send();
    }
    done();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    this.#copy(chunk, 0, (error) => {
      if (error) return callback(error);
      callback(null, chunk);
    });
  }

  override _flush(callback: TransformCallback): void {
    this.#send();
    this.#finished = (digest) => {
      this.#digest = digest;
      void this.#worker.terminate();
      callback();
    };
    this.#worker.postMessage("end");
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    void this.#worker.terminate();
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
 * A pass-through Transform that hashes what flows through it.
 *
 * @example
 * const tee = createHashTee();
 * await pipeline(source, tee, sink);
 * tee.digest(); // "e3b0c442…"
 */
export function createHashTee(): HashTee {
  return new HashTee();
}
