// A pass-through stage that computes the SHA-256 of the bytes flowing through it (the file as served,
// before decoding), so verification never needs a second pass over the image.
//
// With more than one CPU the hashing runs on a worker thread (slice-worker.ts): SHA-256 (~2 GB/s
// with SHA-NI) costs about as much as everything else a pull does on the main thread.
import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { Transform, type TransformCallback } from "node:stream";
import { startSliceWorker } from "./slice-worker.ts";

/** The worker's job: SHA-256 over the slices, the hex digest at the end. */
export const SHA256_JOB = `() => {
  const hash = require("node:crypto").createHash("sha256");
  return { slice: (bytes) => { hash.update(bytes); }, finish: () => hash.digest("hex") };
}`;

/** Where the SHA-256 is computed: both give the same digest. */
export type HashPlacement = "worker" | "inline";

interface Hasher {
  update(chunk: Buffer, done: (error?: Error) => void): void;
  digest(): Promise<string>;
  close(): void;
}

function inlineHasher(): Hasher {
  const hash = createHash("sha256");
  return {
    update: (chunk, done) => { hash.update(chunk); done(); },
    digest: async () => hash.digest("hex"),
    close: () => {},
  };
}

function workerHasher(): Hasher {
  const worker = startSliceWorker({ job: SHA256_JOB, sliceSize: 2 * 1024 * 1024, slices: 3 });
  return {
    update: (chunk, done) => worker.write(chunk, done),
    digest: async () => (await worker.finish()) as string,
    close: () => void worker.close(),
  };
}

/**
 * Called with the digest as soon as the last byte passed, before the stages after the tee are done
 * (a decoder may still be expanding a small download into gigabytes): throwing ends the pipeline there.
 */
export type DigestCheck = (sha256: string) => void;

export class HashTee extends Transform {
  readonly #hasher: Hasher;
  readonly #check: DigestCheck | undefined;
  #digest: string | undefined;
  #bytes = 0;

  constructor(placement: HashPlacement, check?: DigestCheck) {
    super();
    this.#hasher = placement === "worker" ? workerHasher() : inlineHasher();
    this.#check = check;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    this.#hasher.update(chunk, (error) => (error ? callback(error) : callback(null, chunk)));
  }

  override _flush(callback: TransformCallback): void {
    this.#hasher.digest().then((hex) => {
      this.#hasher.close();
      this.#digest = hex;
      this.#check?.(hex);
    }).then(() => callback(), (error: Error) => {
      this.#hasher.close();
      callback(error);
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
 * has a second CPU (`placement` overrides). `check`, when given, judges the digest the moment the
 * input ends.
 *
 * @example
 * const tee = createHashTee();
 * await pipeline(source, tee, sink);
 * tee.digest(); // "e3b0c442…"
 */
export function createHashTee(placement: HashPlacement = availableParallelism() > 1 ? "worker" : "inline", check?: DigestCheck): HashTee {
  return new HashTee(placement, check);
}
