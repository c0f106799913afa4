// The lazy image over a real range reader, a real HTTP server on 127.0.0.1 and a real sparse file:
// exact reads, one request per run of missing chunks, read-ahead, shared fetches, hydration, demand
// reads before hydration batches, outages (the server stopped and started again on its port), an
// image replaced on the server, a local copy that cannot be written.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, utimesSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { createLazyImage, type LazyImage, type LazyImageOptions } from "../../../runtime/lazy-image.ts";
import { ImageChangedError, openRangeReader } from "../../../runtime/range-reader.ts";
import { startFixtureServer, type FixtureServer } from "../../support/http-fixture-server.ts";
import { tempDir } from "../../support/temp-dir.ts";

const CHUNK = 64 << 10;
/** 80 chunks and a short one. */
const IMAGE = randomBytes(80 * CHUNK + 1000);
const CHUNKS = 81;

let dir: string;
let server: FixtureServer;
let copies = 0;
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  dir = tempDir("netimport-lazy-");
  writeFileSync(join(dir, "image.raw"), IMAGE);
  writeFileSync(join(dir, "other.raw"), randomBytes(IMAGE.length));
  utimesSync(join(dir, "other.raw"), new Date(), new Date(Date.now() + 60_000));
  server = await startFixtureServer({ root: dir });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  server.behave("/image.raw", undefined);
});
after(async () => {
  await server.close();
});

interface Setup {
  image: LazyImage;
  lines: string[];
  path: string;
}

/** A lazy image of image.raw on `on` (default: the shared server), with small chunks and no read-ahead unless asked. */
async function lazy(options: Partial<LazyImageOptions> = {}, on: { url: string } = server, mode: "w+" | "r" = "w+"): Promise<Setup> {
  const reader = await openRangeReader(`${on.url}/image.raw`, { idleTimeoutMs: 1000 });
  const path = join(dir, `copy-${copies++}.raw`);
  const sized = await open(path, "w+");
  await sized.truncate(reader.size);
  await sized.close();
  const file = await open(path, mode);
  const lines: string[] = [];
  const image = createLazyImage({
    source: reader, file, chunkBytes: CHUNK, readAheadBytes: 0, hydrateBatchBytes: 4 * CHUNK,
    outageLimitMs: 10_000, backoff: { baseMs: 20, capMs: 100 }, log: (line) => lines.push(line), ...options,
  });
  cleanups.push(async () => {
    await image.stop();
    await reader.close();
    await file.close();
  });
  return { image, lines, path };
}

/** The Range requests `server` received after the probe, as [first, last] chunk, in the order they came. */
function requests(on: FixtureServer = server): Array<[number, number]> {
  return on.log.filter((entry) => entry.range && entry.range !== "bytes=0-0").map((entry) => {
    const [, from, to] = /^bytes=(\d+)-(\d+)$/.exec(entry.range!)!;
    return [Number(from) / CHUNK, Math.floor(Number(to) / CHUNK)];
  });
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const slice = (offset: number, length: number) => IMAGE.subarray(offset, offset + length);

describe("lazy image: reads", () => {
  it("returns the image's bytes at random offsets and lengths, aligned or not, then from the file alone", async () => {
    const { image } = await lazy({ readAheadBytes: 2 * CHUNK });
    server.log.length = 0;
    const asks = Array.from({ length: 120 }, (_, i) => {
      if (i === 0) return { offset: IMAGE.length - 1, length: 1 };
      if (i === 1) return { offset: 0, length: 0 };
      const aligned = i % 3 === 0;
      const offset = aligned ? 4096 * Math.floor(Math.random() * (IMAGE.length / 4096)) : Math.floor(Math.random() * IMAGE.length);
      const length = Math.min(IMAGE.length - offset, aligned ? 4096 * (1 + Math.floor(Math.random() * 64)) : 1 + Math.floor(Math.random() * 3 * CHUNK));
      return { offset, length };
    });
    // In waves of concurrent reads, as a block device's queue sends them.
    for (let wave = 0; wave < asks.length; wave += 20) {
      const batch = asks.slice(wave, wave + 20);
      const answers = await Promise.all(batch.map(({ offset, length }) => image.read(offset, length)));
      for (const [i, { offset, length }] of batch.entries()) assert.ok(answers[i]!.equals(slice(offset, length)), `read of ${length} at ${offset}`);
    }
    const { demandReads } = image.progress();
    assert.ok(demandReads > 0 && requests().length > 0);
    // The same reads again: every chunk they touch is local now.
    for (const { offset, length } of asks) assert.ok((await image.read(offset, length)).equals(slice(offset, length)));
    assert.equal(image.progress().demandReads, demandReads, "the second reads came from the file alone");
    assert.equal(image.progress().reads, asks.length * 2);
    await assert.rejects(image.read(IMAGE.length - 10, 11), RangeError);
  });

  it("fetches the missing chunks of a read with one request per run, and reads local ones from the file", async () => {
    const { image } = await lazy({ hydrateBatchBytes: 8 * CHUNK });
    server.log.length = 0;
    // From the middle of chunk 2 to the middle of chunk 6: five chunks, one request.
    assert.ok((await image.read(2 * CHUNK + 100, 4 * CHUNK)).equals(slice(2 * CHUNK + 100, 4 * CHUNK)));
    assert.deepEqual(requests(), [[2, 6]]);
    // Chunk 9 local, 8 and 10 not: two requests, chunk 9 from the file.
    await image.read(9 * CHUNK, 10);
    server.log.length = 0;
    assert.ok((await image.read(8 * CHUNK, 3 * CHUNK)).equals(slice(8 * CHUNK, 3 * CHUNK)));
    assert.deepEqual(requests(), [[8, 8], [10, 10]]);
    server.log.length = 0;
    assert.ok((await image.read(2 * CHUNK, 9 * CHUNK)).equals(slice(2 * CHUNK, 9 * CHUNK)));
    assert.deepEqual(requests(), [[7, 7]], "only the one missing chunk between");
    assert.equal(image.progress().localBytes, 9 * CHUNK);
    // No request larger than a hydration batch: what one fetch holds in memory stays bounded.
    server.log.length = 0;
    await image.read(20 * CHUNK, 10 * CHUNK);
    assert.deepEqual(requests(), [[20, 27], [28, 29]]);
  });

  it("reads ahead the missing chunks after a read, in a request of its own, never past the image", async () => {
    const { image } = await lazy({ readAheadBytes: 3 * CHUNK });
    server.log.length = 0;
    await image.read(6 * CHUNK, 10);
    await waitFor("the read-ahead", () => image.progress().localBytes === 4 * CHUNK);
    // Two connections: which request reaches the server first is not up to us.
    const sorted = () => requests().sort((a, b) => a[0] - b[0]);
    assert.deepEqual(sorted(), [[6, 6], [7, 9]]);
    server.log.length = 0;
    await image.read(4 * CHUNK, 10);
    await waitFor("the read-ahead", () => image.progress().localBytes === 6 * CHUNK);
    assert.deepEqual(sorted(), [[4, 4], [5, 5]], "chunk 5 read ahead; 6 and 7 are local already");
    server.log.length = 0;
    await image.read(78 * CHUNK, 10);
    await waitFor("the read-ahead", () => image.progress().localBytes === 8 * CHUNK + 1000);
    assert.deepEqual(sorted(), [[78, 78], [79, 80]]);
    assert.ok(server.log.some((entry) => entry.range === `bytes=${79 * CHUNK}-${IMAGE.length - 1}`));
  });

  it("shares one fetch between reads of the same missing chunk, also with the hydrator's batch", async () => {
    const { image } = await lazy();
    server.behave("/image.raw", { delayMs: 100 });
    server.log.length = 0;
    const answers = await Promise.all([image.read(3 * CHUNK, 100), image.read(3 * CHUNK + 5000, 4096), image.read(3 * CHUNK, CHUNK)]);
    assert.ok(answers[1]!.equals(slice(3 * CHUNK + 5000, 4096)));
    assert.deepEqual(requests(), [[3, 3]]);

    server.log.length = 0;
    image.startHydration();
    await waitFor("the first batch", () => requests().length === 1);
    assert.deepEqual(requests(), [[0, 2]], "the batch stops at local chunk 3");
    assert.ok((await image.read(CHUNK + 10, CHUNK)).equals(slice(CHUNK + 10, CHUNK)));
    assert.deepEqual(requests().slice(0, 1), [[0, 2]]);
    assert.equal(requests().filter(([first, last]) => first <= 2 && last >= 1).length, 1, "chunks 1 and 2 were fetched once");
  });
});

describe("lazy image: hydration", () => {
  it("copies every missing chunk in order, a batch a request, then flushes and says so", async () => {
    const { image, lines, path } = await lazy();
    await image.read(10 * CHUNK, 2 * CHUNK);
    server.log.length = 0;
    image.startHydration();
    await image.completion;
    assert.ok(readFileSync(path).equals(IMAGE));
    const batches = requests();
    const expected: Array<[number, number]> = [[0, 3], [4, 7], [8, 9], [12, 15]];
    for (let first = 16; first < CHUNKS; first += 4) expected.push([first, Math.min(first + 3, CHUNKS - 1)]);
    assert.deepEqual(batches, expected, "chunks 10 and 11 were local already");
    const progress = image.progress();
    assert.equal(progress.complete, true);
    assert.equal(progress.localBytes, IMAGE.length);
    assert.equal(progress.fetchedBytes, IMAGE.length);
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /image\.raw: all 5\.0 MiB are local, 4\.9 MiB fetched in [\d.]+ s \([\d.]+ \w+\/s\)/);
    // Everything local: no more requests.
    server.log.length = 0;
    assert.ok((await image.read(0, IMAGE.length)).equals(IMAGE));
    assert.equal(server.log.length, 0);
  });

  it("answers a demand read issued mid-hydration before the hydrator starts its next batch", async () => {
    const { image, path } = await lazy();
    server.behave("/image.raw", { delayMs: 150 });
    server.log.length = 0;
    image.startHydration();
    await waitFor("the first batch", () => requests().length === 1);
    assert.ok((await image.read(60 * CHUNK + 7, 3 * CHUNK)).equals(slice(60 * CHUNK + 7, 3 * CHUNK)));
    // Nothing can have reached the server between the read's answer and this line.
    assert.deepEqual(requests(), [[0, 3], [60, 63]], "the demand read went out while batch 1 was in flight, batch 2 waits for it");
    server.behave("/image.raw", undefined);
    await image.completion;
    assert.deepEqual(requests()[2], [4, 7]);
    assert.ok(readFileSync(path).equals(IMAGE));
  });

  it("waits out an outage during hydration, and completes once the server is back on its port", async () => {
    const own = await startFixtureServer({ root: dir, behaviours: { "/image.raw": { delayMs: 10 } } });
    const { image, lines, path } = await lazy({}, own);
    image.startHydration();
    await waitFor("some batches", () => requests(own).length >= 3);
    await own.close();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(image.progress().complete, false);
    const again = await startFixtureServer({ root: dir, port: own.port });
    cleanups.push(() => again.close());
    await image.completion;
    assert.ok(readFileSync(path).equals(IMAGE));
    assert.equal(lines.filter((line) => /: retrying; reads of blocks not yet local wait up to 10 s/.test(line)).length, 1, lines.join("\n"));
    assert.equal(lines.filter((line) => /image\.raw answers again after [\d.]+ s/.test(line)).length, 1, lines.join("\n"));
    assert.match(lines.at(-1)!, /are local/);
  });
});

describe("lazy image: outages and failures", () => {
  it("fails a read of a missing chunk after the outage limit, serves local chunks, and reads again when the server is back", async () => {
    const own = await startFixtureServer({ root: dir });
    const { image, lines } = await lazy({ outageLimitMs: 400 }, own);
    await image.read(0, CHUNK);
    await own.close();

    let started = performance.now();
    await assert.rejects(image.read(10 * CHUNK, 10), /image\.raw has not answered for 0\.4 s/);
    const waited = performance.now() - started;
    assert.ok(waited >= 400 && waited < 2000, `waited ${waited} ms`);
    assert.match(lines.at(-1)!, /image\.raw has not answered for 0\.4 s: reads of blocks not yet local fail until it is back; 1% is local/);
    assert.equal(image.progress().serverGone, true);
    assert.ok((await image.read(100, 1000)).equals(slice(100, 1000)), "a local chunk reads fine");

    started = performance.now();
    await assert.rejects(image.read(11 * CHUNK, 10), /is not answering/);
    assert.ok(performance.now() - started < 350, "at once while the server is gone, not after the 400 ms limit");

    const again = await startFixtureServer({ root: dir, port: own.port });
    cleanups.push(() => again.close());
    assert.ok((await image.read(12 * CHUNK, 10)).equals(slice(12 * CHUNK, 10)));
    assert.equal(image.progress().serverGone, false);
    assert.match(lines.at(-1)!, /image\.raw answers again after [\d.]+ s: reads and hydration go on/);
    assert.equal(lines.filter((line) => /has not answered/.test(line)).length, 1);
    assert.equal(lines.filter((line) => /retrying/.test(line)).length, 1, "one line at the outage's start, not one a retry");
  });

  it("ends with ImageChangedError when the image changes on the server: reads of missing chunks fail, local ones still read", async () => {
    const { image, lines } = await lazy();
    await image.read(0, CHUNK);
    server.behave("/image.raw", { replacedBy: { path: "/other.raw", afterRequests: 0 } });
    image.startHydration();
    await assert.rejects(image.completion, ImageChangedError);
    await assert.rejects(image.read(5 * CHUNK, 10), ImageChangedError);
    server.log.length = 0;
    await assert.rejects(image.read(6 * CHUNK, 10), ImageChangedError);
    assert.equal(server.log.length, 0, "no request once the image is known to have changed");
    assert.ok((await image.read(10, 100)).equals(slice(10, 100)));
    assert.equal(lines.filter((line) => /changed on the server/.test(line)).length, 1, lines.join("\n"));
  });

  it("ends when the local copy cannot be written", async () => {
    const { image } = await lazy({}, server, "r");
    await assert.rejects(image.read(0, 10), /cannot write the local copy of the image/);
    await assert.rejects(image.completion, /cannot write the local copy/);
  });

  it("stop() ends a read that waits for the server", async () => {
    const { image } = await lazy();
    server.behave("/image.raw", { delayMs: 500 });
    const read = image.read(0, 10);
    setTimeout(() => void image.stop(), 20);
    await assert.rejects(read, /lazy image stopped/);
    await assert.rejects(image.read(0, 10), /lazy image stopped/);
  });
});
