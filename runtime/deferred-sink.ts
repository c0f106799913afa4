// A Writable that creates its real sink only when the stream's first bytes are there, so decisions
// that need them (the compression, and the decoded size a zstd header announces, for the space
// check) are made before anything is written.
import { Writable, type Duplex } from "node:stream";
import { finished, pipeline } from "node:stream/promises";

/** How many leading bytes `open()` sees at least (unless the stream is shorter): a zstd frame header's worst case. */
export const HEAD_BYTES = 32;

/** A sink, or stages that end in one (a decoder, then a file): the stream is written into the first. */
export type SinkStages = Writable | readonly [Duplex, ...Duplex[], Writable];

/**
 * Forwards everything to the Writable `open(head)` resolves to (or through the stages it resolves to). `open` is called once, with the
 * first HEAD_BYTES or more bytes of the stream (fewer only when that is all there is, empty for an
 * empty stream); the head is then written to the sink like the rest. Finishes when the last stage has finished.
 *
 * @example createDeferredSink(async (head) => { await ensureSpace(dir, sizeFrom(head)); return createSparseFileSink(tmp); })
 */
export function createDeferredSink(open: (head: Buffer) => Promise<SinkStages>): Writable {
  let sink: Writable | undefined;
  let stages: readonly Writable[] = [];
  let done: Promise<unknown> | undefined;
  let opening: Promise<Writable> | undefined;
  const held: Buffer[] = [];
  let heldBytes = 0;

  const ready = (): Promise<Writable> => {
    const head = Buffer.concat(held);
    held.length = 0;
    opening ??= open(head).then((opened) => {
      stages = Array.isArray(opened) ? opened : [opened as Writable];
      const s = stages[0]!;
      sink = s;
      done = stages.length > 1 ? pipeline(stages as unknown as [Duplex, Writable]) : finished(s);
      done.catch((error: Error) => outer.destroy(error));
      if (outer.destroyed) for (const stage of stages) stage.destroy();
      return s;
    });
    return opening.then((s) => (head.length === 0 || s.write(head) ? s : new Promise((resolve) => s.once("drain", () => resolve(s)))));
  };
  const outer: Writable = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _encoding, callback) {
      const target = sink;
      if (target) {
        if (target.write(chunk)) callback();
        else target.once("drain", () => callback());
        return;
      }
      held.push(chunk);
      heldBytes += chunk.length;
      if (heldBytes < HEAD_BYTES) return callback();
      ready().then(() => callback(), callback);
    },
    final(callback) {
      (sink ? Promise.resolve(sink) : ready()).then(async (s) => {
        s.end();
        await done;
      }).then(() => callback(), callback);
    },
    destroy(error, callback) {
      for (const stage of stages) if (!stage.destroyed) stage.destroy(error ?? undefined);
      callback(error);
    },
  });
  return outer;
}
