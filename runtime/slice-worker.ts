// A worker thread fed with a stream cut into fixed-size slices: what the hash tee and the sparse file
// sink run their heavy part on, so that the main thread only receives, copies and hands over.
//
// The slices are a few plain ArrayBuffers *transferred* to the worker and back (no SharedArrayBuffer:
// V8 copies into shared memory with a slow atomics-safe loop). When every slice is with the worker,
// write() waits: a slow worker applies backpressure instead of growing memory.
import { Worker } from "node:worker_threads";

/**
 * The worker's job, as the source text of a JavaScript function `(data) => ({ slice, finish })`:
 * `slice(bytes, offset)` handles one slice (a Uint8Array holding the stream's bytes from `offset` on),
 * `finish()` runs after the last one and returns the result. It runs in the worker, so it may only use
 * `require()` of Node's built-in modules and what `data` carries.
 */
export type SliceJobSource = string;

export interface SliceWorkerOptions {
  job: SliceJobSource;
  /** Passed to the job's function (structured clone). */
  data?: unknown;
  sliceSize: number;
  slices: number;
  /** Turns a failure the job reported ({ message, code }) into the Error to surface. */
  describeError?: (error: { message: string; code?: string }) => Error;
}

export interface SliceWorker {
  /** The worker's thread. */
  readonly threadId: number;
  /** Copies `chunk` into slices, handing each full one over; `done` once all of it is copied. */
  write(chunk: Uint8Array, done: (error?: Error) => void): void;
  /** Hands over the last, partial slice, waits for every slice, and resolves with what finish() returned. */
  finish(): Promise<unknown>;
  /** Stops the worker (at once; idempotent); resolves once its thread has stopped. */
  close(): Promise<void>;
}

// The first message is the job ({ source, data }); a thread can so be started before its job is known.
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
let started = false;
let job;
parentPort.on("message", (message) => {
  try {
    if (!started) {
      started = true;
      job = new Function("require", "return (" + message.source + ")")(require)(message.data);
      return;
    }
    if (!job) return; // it failed to start, and said so
    if (message === "finish") return parentPort.postMessage({ finished: job.finish() });
    job.slice(new Uint8Array(message.buffer, 0, message.length), message.offset);
    parentPort.postMessage({ buffer: message.buffer }, [message.buffer]);
  } catch (error) {
    parentPort.postMessage({ error: { message: String(error && error.message || error), code: error && error.code } });
  }
});
`;

const newWorker = () => new Worker(WORKER_SOURCE, { eval: true, stdout: false, stderr: false });

let spare: Worker | undefined;

/**
 * Starts a thread for the next startSliceWorker() to take, so that its start-up (~20 ms) overlaps
 * with something else, such as waiting for the server's answer. Idempotent; an untaken thread does
 * not keep the process alive. Returns the thread's id.
 */
export function prestartSliceWorker(): number {
  if (spare) return spare.threadId;
  const worker = newWorker();
  worker.unref();
  worker.on("error", () => {}); // a spare that failed is not taken: the exit below drops it
  worker.once("exit", () => { if (spare === worker) spare = undefined; });
  spare = worker;
  return worker.threadId;
}

/** Stops the spare thread, when the pull turned out to need none. */
export function dropSpareSliceWorker(): void {
  void spare?.terminate();
  spare = undefined;
}

type Reply = { buffer: ArrayBuffer } | { finished: unknown } | { error: { message: string; code?: string } };

/**
 * Starts a worker running `job` over slices of what is written to it.
 *
 * ```ts
 * const hashing = startSliceWorker({ job: "() => { const h = require('node:crypto').createHash('sha256');"
 *   + " return { slice: (b) => h.update(b), finish: () => h.digest('hex') }; }", sliceSize: 2 << 20, slices: 3 });
 * hashing.write(chunk, (error) => …);
 * const hex = await hashing.finish();
 * ```
 */
export function startSliceWorker(options: SliceWorkerOptions): SliceWorker {
  const worker = spare ?? newWorker();
  spare = undefined;
  worker.ref();
  worker.postMessage({ source: options.job, data: options.data });
  const free: ArrayBuffer[] = Array.from({ length: options.slices }, () => new ArrayBuffer(options.sliceSize));
  let slice: Uint8Array | undefined;
  let filled = 0;
  let offset = 0; // stream offset of the slice being filled
  let failure: Error | undefined;
  let waiting: (() => void) | undefined;
  let finished: { resolve: (value: unknown) => void; reject: (error: Error) => void } | undefined;
  let closed: Promise<void> | undefined;

  const wake = () => {
    const wait = waiting;
    waiting = undefined;
    wait?.();
  };
  const fail = (error: Error) => {
    failure ??= error;
    wake();
    finished?.reject(failure);
    finished = undefined;
  };
  worker.on("message", (reply: Reply) => {
    if ("buffer" in reply) {
      free.push(reply.buffer);
      wake();
    } else if ("finished" in reply) {
      finished?.resolve(reply.finished);
      finished = undefined;
    } else {
      fail(options.describeError?.(reply.error) ?? Object.assign(new Error(reply.error.message), { code: reply.error.code }));
    }
  });
  worker.on("error", (error) => fail(new Error(`worker thread failed: ${error.message}`, { cause: error })));
  worker.on("exit", (code) => { if (!closed) fail(new Error(`worker thread exited early (status ${code})`)); });

  const send = () => {
    if (!slice || filled === 0) return;
    const buffer = slice.buffer as ArrayBuffer;
    worker.postMessage({ buffer, length: filled, offset }, [buffer]);
    offset += filled;
    slice = undefined;
    filled = 0;
  };
  const copy = (chunk: Uint8Array, from: number, done: (error?: Error) => void): void => {
    while (from < chunk.length) {
      if (failure) return done(failure);
      if (!slice) {
        const buffer = free.pop();
        if (!buffer) {
          waiting = () => copy(chunk, from, done);
          return;
        }
        slice = new Uint8Array(buffer);
      }
      const n = Math.min(chunk.length - from, options.sliceSize - filled);
      slice.set(chunk.subarray(from, from + n), filled);
      filled += n;
      from += n;
      if (filled === options.sliceSize) send();
    }
    done(failure);
  };
  return {
    threadId: worker.threadId,
    write: (chunk, done) => copy(chunk, 0, done),
    finish: () => new Promise((resolve, reject) => {
      if (failure) return reject(failure);
      send();
      finished = { resolve, reject };
      // Messages are handled in order: "finish" runs after every slice sent before it.
      worker.postMessage("finish");
    }),
    close: () => {
      closed ??= worker.terminate().then(() => undefined);
      return closed;
    },
  };
}
