// A Writable that creates its real sink only when the first byte arrives, so decisions that need
// the stream's first bytes (the decoded size a zstd header announces, for the space check) are
// made before anything is written.
import { Writable } from "node:stream";
import { finished } from "node:stream/promises";

/**
 * Forwards everything to the Writable `open()` resolves to, called once, on the first write (or at
 * the end of an empty stream). Finishes when that sink has finished.
 *
 * @example createDeferredSink(async () => { await ensureSpace(dir, hint); return createSparseFileSink(tmp); })
 */
export function createDeferredSink(open: () => Promise<Writable>): Writable {
  let sink: Writable | undefined;
  let opening: Promise<Writable> | undefined;
  const ready = async (): Promise<Writable> => {
    opening ??= open().then((s) => {
      sink = s;
      if (outer.destroyed) s.destroy();
      s.on("error", (error) => outer.destroy(error));
      return s;
    });
    return opening;
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
      ready().then((s) => (s.write(chunk) ? callback() : s.once("drain", () => callback())), callback);
    },
    final(callback) {
      ready().then(async (s) => {
        s.end();
        await finished(s);
      }).then(() => callback(), callback);
    },
    destroy(error, callback) {
      if (sink && !sink.destroyed) sink.destroy(error ?? undefined);
      callback(error);
    },
  });
  return outer;
}
