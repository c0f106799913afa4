import assert from "node:assert/strict";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, it } from "node:test";
import { createDeferredSink } from "../../../runtime/deferred-sink.ts";

function collector(into: Buffer[], delayMs = 0): Writable {
  return new Writable({
    highWaterMark: 4,
    write(chunk: Buffer, _e, cb) {
      into.push(chunk);
      setTimeout(cb, delayMs);
    },
  });
}

describe("createDeferredSink", () => {
  it("opens the real sink only at the first byte, then forwards everything in order", async () => {
    const events: string[] = [];
    const got: Buffer[] = [];
    const source = Readable.from((async function* () {
      events.push("first chunk produced");
      yield Buffer.from("a");
      yield Buffer.from("bc");
    })());
    await pipeline(source, createDeferredSink(async () => {
      events.push("opened");
      return collector(got, 1);
    }));
    assert.deepEqual(events, ["first chunk produced", "opened"]);
    assert.equal(Buffer.concat(got).toString(), "abc");
  });

  it("still opens (and finishes) the sink for an empty stream", async () => {
    let opened = 0;
    await pipeline(Readable.from([]), createDeferredSink(async () => {
      opened++;
      return collector([]);
    }));
    assert.equal(opened, 1);
  });

  it("fails the pipeline when opening fails or the sink errors", async () => {
    await assert.rejects(pipeline(Readable.from([Buffer.from("x")]), createDeferredSink(async () => {
      throw new Error("no space");
    })), /no space/);
    const failing = new Writable({ write(_c, _e, cb) { cb(new Error("disk on fire")); } });
    await assert.rejects(pipeline(Readable.from([Buffer.from("x"), Buffer.from("y")]), createDeferredSink(async () => failing)), /disk on fire/);
  });
});
