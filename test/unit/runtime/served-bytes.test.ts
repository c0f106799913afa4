import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, it } from "node:test";
import { createServedBytes } from "../../../runtime/served-bytes.ts";

const sink = (out: Buffer[] = []) => new Writable({ write(c: Buffer, _e, cb) { out.push(c); cb(); } });

describe("createServedBytes", () => {
  it("passes every byte through unchanged (the same chunks), counts and hashes them", async () => {
    const chunks = Array.from({ length: 20 }, (_, i) => randomBytes(1000 + i * 37));
    const out: Buffer[] = [];
    const added: number[] = [];
    const served = createServedBytes({ hash: true, progress: { add: (n) => added.push(n), end: () => added.push(-1) } });
    assert.equal(served.sha256, undefined, "no digest before the end");
    await pipeline(Readable.from(chunks), served, sink(out));
    const all = Buffer.concat(chunks);
    assert.ok(out.every((chunk, i) => chunk === chunks[i]), "no copies");
    assert.equal(served.sha256, createHash("sha256").update(all).digest("hex"));
    assert.equal(served.bytes, all.length);
    assert.deepEqual(added, [...chunks.map((c) => c.length), -1], "progress per chunk, then its final line");
  });

  it("hashes nothing when there is nothing to verify", async () => {
    const served = createServedBytes({ hash: false, check: () => assert.fail("no digest to judge") });
    await pipeline(Readable.from([randomBytes(5000)]), served, sink());
    assert.equal(served.sha256, undefined);
    assert.equal(served.bytes, 5000);
  });

  it("judges the digest as soon as the input ends, before the stages after it finish", async () => {
    const order: string[] = [];
    const served = createServedBytes({ hash: true, check: (hex) => { order.push(`check ${hex.slice(0, 8)}`); throw new Error("checksum mismatch"); } });
    const slow = new Writable({ write(_c, _e, cb) { setTimeout(cb, 5); }, final(cb) { order.push("sink final"); cb(); } });
    await assert.rejects(pipeline(Readable.from([Buffer.from("a"), Buffer.from("b")]), served, slow), /checksum mismatch/);
    assert.deepEqual(order, [`check ${createHash("sha256").update("ab").digest("hex").slice(0, 8)}`], "the sink never finished");
  });

  it("hashes an empty stream", async () => {
    const served = createServedBytes({ hash: true });
    await pipeline(Readable.from([]), served, sink());
    assert.equal(served.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });
});
