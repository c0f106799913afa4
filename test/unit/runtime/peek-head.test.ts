import assert from "node:assert/strict";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, it } from "node:test";
import { HEAD_BYTES, peekHead } from "../../../runtime/peek-head.ts";

async function drain(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  await pipeline(stream, new Writable({ write(chunk: Buffer, _e, cb) { chunks.push(chunk); cb(); } }));
  return Buffer.concat(chunks).toString();
}

describe("peekHead", () => {
  it("gathers the head from many small chunks and leaves every byte in the stream", async () => {
    const data = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
    const source = Readable.from((async function* () {
      for (const char of data) yield Buffer.from(char);
    })(), { objectMode: false });
    const { head, stream } = await peekHead(source);
    assert.ok(head.length >= HEAD_BYTES);
    assert.equal(head.toString(), data.slice(0, head.length));
    assert.equal(stream, source, "the same stream, head pushed back");
    assert.equal(await drain(stream), data);
  });

  it("returns the whole stream when it is shorter than the head, and nothing for an empty one", async () => {
    const short = await peekHead(Readable.from([Buffer.from("ab"), Buffer.from("c")], { objectMode: false }));
    assert.equal(short.head.toString(), "abc");
    assert.equal(await drain(short.stream), "abc");
    const empty = await peekHead(Readable.from([], { objectMode: false }));
    assert.equal(empty.head.length, 0);
    assert.equal(await drain(empty.stream), "");
  });

  it("rejects with the stream's error", async () => {
    const failing = Readable.from((async function* () {
      yield Buffer.from("x");
      throw new Error("connection reset");
    })(), { objectMode: false });
    await assert.rejects(peekHead(failing), /connection reset/);
  });
});
