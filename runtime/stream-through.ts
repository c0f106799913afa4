// Runs an async iterable of bytes through a Node stream stage and yields what comes out, pulling the
// output (so a slow consumer slows the stage down) while the input is fed with backpressure.
import type { Duplex } from "node:stream";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

/**
 * Feeds `input` into `stage` and yields the stage's output.
 *
 * ```ts
 * for await (const plain of through(compressedChunks, createGunzip())) sink.write(plain);
 * ```
 * An error from the input or the stage ends the iteration with that error; returning early
 * destroys the stage.
 */
export async function* through(input: AsyncIterable<Uint8Array>, stage: Duplex): AsyncGenerator<Buffer> {
  const fed = pipeline(Readable.from(input, { objectMode: false }), stage).then(() => undefined, (error: Error) => error);
  try {
    for await (const chunk of stage) yield chunk as Buffer;
  } finally {
    if (!stage.destroyed && !stage.readableEnded) stage.destroy();
  }
  const error = await fed;
  if (error) throw error;
}
