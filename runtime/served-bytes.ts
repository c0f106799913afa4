// The first stage after the source: the bytes as served pass through it unchanged and are counted
// (the progress lines) and, when verification expects a hash, hashed with SHA-256 on the way, so
// verification never needs a second pass over the image. The hash is judged the moment the input
// ends, before the stages after it are done (a decoder may still be expanding a small download into
// gigabytes): a wrong image is refused before it is decoded in full.
//
// The hash runs here, on the main thread: handing the bytes to another thread costs a copy of each,
// which is as much work as hashing them with the CPU's SHA instructions.
import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import type { ProgressMeter } from "./progress.ts";

/** Judges the digest; throwing ends the pipeline with that error. */
export type DigestCheck = (sha256: string) => void;

export interface ServedBytesOptions {
  /** Hash the bytes (only when verification will compare the hash with one it expects). */
  hash: boolean;
  /** Called with the digest as soon as the last byte passed. */
  check?: DigestCheck;
  progress?: ProgressMeter;
}

export class ServedBytes extends Transform {
  readonly #hash: Hash | undefined;
  readonly #check: DigestCheck | undefined;
  readonly #progress: ProgressMeter | undefined;
  #digest: string | undefined;
  #bytes = 0;

  constructor(options: ServedBytesOptions) {
    super();
    this.#hash = options.hash ? createHash("sha256") : undefined;
    this.#check = options.check;
    this.#progress = options.progress;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    this.#hash?.update(chunk);
    this.#progress?.add(chunk.length);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#progress?.end();
    try {
      if (this.#hash) {
        this.#digest = this.#hash.digest("hex");
        this.#check?.(this.#digest);
      }
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The lowercase hex SHA-256 of everything that passed; undefined when not hashing or before the end. */
  get sha256(): string | undefined {
    return this.#digest;
  }
}

/**
 * The served-bytes stage of a pull.
 *
 * @example
 * const served = createServedBytes({ hash: true, progress: meter });
 * await pipeline(source, served, sink);
 * served.sha256; // "e3b0c442…"
 */
export function createServedBytes(options: ServedBytesOptions): ServedBytes {
  return new ServedBytes(options);
}
