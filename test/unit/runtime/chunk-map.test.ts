// The chunk map: which chunks of a lazy image are local, the bytes they hold, the next missing one.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ChunkMap } from "../../../runtime/chunk-map.ts";

describe("ChunkMap", () => {
  it("counts chunks with a short last one, and the local bytes with its own length", () => {
    const map = new ChunkMap(10 * 4096 + 100, 4096);
    assert.equal(map.count, 11);
    assert.equal(map.localBytes, 0);
    map.mark(0, 2);
    assert.equal(map.localBytes, 2 * 4096);
    map.mark(10, 11);
    assert.equal(map.localBytes, 2 * 4096 + 100);
    assert.equal(map.endOf(11), 10 * 4096 + 100);
    assert.equal(map.endOf(3), 3 * 4096);
    assert.equal(map.chunkAt(4096 * 3 + 5), 3);
    assert.equal(map.complete, false);
    map.mark(0, 11);
    assert.equal(map.localChunks, 11, "marking a local chunk again does not count it twice");
    assert.equal(map.localBytes, map.size);
    assert.equal(map.complete, true);
  });

  it("finds the next missing chunk across whole words of local chunks", () => {
    const map = new ChunkMap(200 * 4096, 4096);
    map.mark(0, 130);
    map.mark(131, 199);
    assert.equal(map.nextMissing(0), 130);
    assert.equal(map.nextMissing(131), 199);
    assert.equal(map.nextMissing(199), 199);
    map.mark(199, 200);
    assert.equal(map.nextMissing(131), 200, "none after 131: count");
    assert.equal(map.has(130), false);
    assert.equal(map.has(64), true);
  });

  it("agrees with a plain array of booleans on random marks", () => {
    const count = 777;
    const map = new ChunkMap(count * 4096 - 1, 4096);
    const plain = new Array<boolean>(count).fill(false);
    for (let i = 0; i < 300; i++) {
      const start = Math.floor(Math.random() * count);
      const end = Math.min(count, start + Math.floor(Math.random() * 70));
      map.mark(start, end);
      plain.fill(true, start, end);
      const from = Math.floor(Math.random() * count);
      const expected = plain.indexOf(false, from);
      assert.equal(map.nextMissing(from), expected === -1 ? count : expected);
    }
    assert.equal(map.localChunks, plain.filter(Boolean).length);
    for (let i = 0; i < count; i++) assert.equal(map.has(i), plain[i]);
  });

  it("has no chunk for an empty image, and refuses marks outside the image", () => {
    const empty = new ChunkMap(0, 4096);
    assert.equal(empty.count, 0);
    assert.equal(empty.complete, true);
    assert.equal(empty.localBytes, 0);
    assert.throws(() => new ChunkMap(10, 4096).mark(0, 2), RangeError);
    assert.throws(() => new ChunkMap(-1, 4096), RangeError);
  });
});
