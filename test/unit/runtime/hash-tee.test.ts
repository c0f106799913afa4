import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, it } from "node:test";
import { createHashTee } from "../../../runtime/hash-tee.ts";

for (const placement of ["worker", "inline"] as const) describe(`createHashTee, hashing ${placement}`, () => {
  it("passes every byte through unchanged and hashes them", async () => {
    const chunks = Array.from({ length: 20 }, (_, i) => randomBytes(1000 + i * 37));
    const out: Buffer[] = [];
    const tee = createHashTee(placement);
    assert.throws(() => tee.digest(), /before the end/);
    await pipeline(Readable.from(chunks), tee, new Writable({ write(c: Buffer, _e, cb) { out.push(c); cb(); } }));
    const all = Buffer.concat(chunks);
    assert.ok(Buffer.concat(out).equals(all));
    assert.equal(tee.digest(), createHash("sha256").update(all).digest("hex"));
    assert.equal(tee.bytes, all.length);
  });
  it("hashes an empty stream", async () => {
    const tee = createHashTee(placement);
    await pipeline(Readable.from([]), tee, new Writable({ write(_c, _e, cb) { cb(); } }));
    assert.equal(tee.digest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });
  it("hashes more than its in-flight limit correctly, in order, across batches", async () => {
    const block = randomBytes(65536);
    const chunks = Array.from({ length: 600 }, (_, i) => Buffer.concat([block.subarray(i % 97), block.subarray(0, i % 97)]));
    const expected = createHash("sha256");
    for (const c of chunks) expected.update(c);
    const tee = createHashTee(placement);
    let seen = 0;
    await pipeline(Readable.from(chunks), tee, new Writable({ highWaterMark: 1, write(c: Buffer, _e, cb) { seen += c.length; setImmediate(cb); } }));
    assert.equal(seen, 600 * 65536);
    assert.equal(tee.digest(), expected.digest("hex"));
  });
  it("stops its worker when the stream fails midway", async () => {
    const tee = createHashTee(placement);
    const failing = Readable.from((async function* () { yield randomBytes(3 << 20); throw new Error("source broke"); })());
    await assert.rejects(pipeline(failing, tee, new Writable({ write(_c, _e, cb) { cb(); } })), /source broke/);
    assert.throws(() => tee.digest(), /before the end/);
  });
});
