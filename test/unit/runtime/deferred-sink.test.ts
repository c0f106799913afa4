import assert from "node:assert/strict";
import { Readable, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, it } from "node:test";
import { createDeferredSink, HEAD_BYTES } from "../../../runtime/deferred-sink.ts";

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
  it("opens the real sink once the head is there, shows it the head, then forwards everything in order", async () => {
    const events: string[] = [];
    const got: Buffer[] = [];
    const data = Buffer.from("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ");
    const source = Readable.from((async function* () {
      for (let i = 0; i < data.length; i++) {
        events.push(`byte ${i}`);
        yield data.subarray(i, i + 1);
      }
    })());
    let head: Buffer | undefined;
    await pipeline(source, createDeferredSink(async (first) => {
      events.push("opened");
      head = first;
      return collector(got, 1);
    }));
    assert.equal(events.indexOf("opened"), HEAD_BYTES, "opened right after the head's last byte arrived");
    assert.equal(head!.toString(), data.subarray(0, HEAD_BYTES).toString());
    assert.equal(Buffer.concat(got).toString(), data.toString());
  });

  it("opens with the whole stream as head when it is shorter than the head", async () => {
    const got: Buffer[] = [];
    let head: Buffer | undefined;
    await pipeline(Readable.from([Buffer.from("ab"), Buffer.from("c")]), createDeferredSink(async (first) => {
      head = first;
      return collector(got);
    }));
    assert.equal(head!.toString(), "abc");
    assert.equal(Buffer.concat(got).toString(), "abc");
  });

  it("runs the stages it is given, and finishes only when the last one has", async () => {
    const got: Buffer[] = [];
    let finalDone = false;
    const upper = new Transform({ transform(chunk: Buffer, _e, cb) { cb(null, Buffer.from(chunk.toString().toUpperCase())); } });
    const last = new Writable({
      write(chunk: Buffer, _e, cb) { got.push(chunk); cb(); },
      final(cb) { setTimeout(() => { finalDone = true; cb(); }, 30); },
    });
    await pipeline(Readable.from([Buffer.from("x".repeat(40)), Buffer.from("yz")]), createDeferredSink(async () => [upper, last]));
    assert.equal(finalDone, true);
    assert.equal(Buffer.concat(got).toString(), "X".repeat(40) + "YZ");
    const broken = new Transform({ transform(_c, _e, cb) { cb(new Error("decoder broke")); } });
    await assert.rejects(pipeline(Readable.from([Buffer.alloc(64)]), createDeferredSink(async () => [broken, collector([])])), /decoder broke/);
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
