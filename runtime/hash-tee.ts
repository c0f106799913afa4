// A pass-through stage that computes the SHA-256 of the bytes flowing through it (the file as served,
// before decoding), so verification never needs a second pass over the image.
import { createHash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";

export class HashTee extends Transform {
  readonly #hash = createHash("sha256");
  #digest: string | undefined;
  #bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#digest = this.#hash.digest("hex");
    callback();
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
