// Looks at the first bytes of a stream without consuming them, so the pull can choose its stages
// (decoder, sink, where the hash is computed) and check the room for the image before any byte is
// written. The bytes read are pushed back with unshift(): the stream then reads as if untouched.
import { Readable } from "node:stream";

/** How many leading bytes peekHead reads at least (unless the stream is shorter): a zstd frame header's worst case. */
export const HEAD_BYTES = 32;

/**
 * The first `bytes` or more bytes of `stream` (fewer only when that is all there is, empty for an
 * empty stream), and the stream to read from now on: `stream` itself with the head pushed back, or,
 * when the head was all there was, a new stream of just the head. Rejects with the stream's error.
 *
 * @example const { head, stream } = await peekHead(body); detectCompression(head); await pipeline(stream, …);
 */
export async function peekHead(stream: Readable, bytes = HEAD_BYTES): Promise<{ head: Buffer; stream: Readable }> {
  const chunks: Buffer[] = [];
  let length = 0;
  while (length < bytes) {
    const chunk = stream.read() as Buffer | null;
    if (chunk !== null) {
      chunks.push(chunk);
      length += chunk.length;
      continue;
    }
    if (stream.readableEnded || stream.destroyed) break;
    const ended = await new Promise<boolean>((resolve, reject) => {
      const settle = (then: () => void) => {
        stream.off("readable", onReadable).off("end", onEnd).off("error", onError).off("close", onEnd);
        then();
      };
      const onReadable = () => settle(() => resolve(false));
      const onEnd = () => settle(() => resolve(true));
      const onError = (error: Error) => settle(() => reject(error));
      stream.on("readable", onReadable).on("end", onEnd).on("error", onError).on("close", onEnd);
    });
    if (ended) break;
  }
  const head = Buffer.concat(chunks);
  // A stream that has emitted 'end' takes nothing back.
  if (stream.readableEnded || stream.destroyed) return { head, stream: Readable.from(head.length ? [head] : [], { objectMode: false }) };
  if (head.length > 0) stream.unshift(head);
  return { head, stream };
}
