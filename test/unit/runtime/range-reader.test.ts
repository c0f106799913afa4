// The range reader against a real HTTP server on 127.0.0.1 (Range, If-Range, ETag as a web server does
// them): the probe, exact reads, an image replaced on the server, mirrors, one attempt per call, and
// host names that keep resolving after the resolver is gone.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { lookup as dnsLookup } from "node:dns";
import { mkdirSync, utimesSync, writeFileSync } from "node:fs";
import type { LookupFunction } from "node:net";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { HttpError } from "../../../runtime/http-source.ts";
import { ImageChangedError, openRangeReader, type RangeReader, type RangeReaderOptions } from "../../../runtime/range-reader.ts";
import { startFixtureServer, type FixtureServer } from "../../support/http-fixture-server.ts";
import { tempDir } from "../../support/temp-dir.ts";

/** Not a multiple of anything: the last bytes are a short block. */
const IMAGE = randomBytes((1 << 20) + 12345);

let dir: string;
let server: FixtureServer;
const readers: RangeReader[] = [];

async function open(url: string, options: RangeReaderOptions = {}): Promise<RangeReader> {
  const reader = await openRangeReader(url, { idleTimeoutMs: 2000, ...options });
  readers.push(reader);
  return reader;
}

/** The requests after the probe of bytes 0-0. */
function reads(): typeof server.log {
  return server.log.filter((entry) => entry.range !== "bytes=0-0");
}

before(async () => {
  dir = tempDir("netimport-range-");
  writeFileSync(join(dir, "image.raw"), IMAGE);
  // The same bytes on a mirror, with another mtime, so another ETag (as two web servers would have).
  mkdirSync(join(dir, "mirror"));
  writeFileSync(join(dir, "mirror", "image.raw"), IMAGE);
  utimesSync(join(dir, "mirror", "image.raw"), new Date(), new Date(Date.now() - 3_600_000));
  // An upload that replaced the image: other bytes, another size, a later mtime.
  writeFileSync(join(dir, "other.raw"), randomBytes(IMAGE.length + 4096));
  utimesSync(join(dir, "other.raw"), new Date(), new Date(Date.now() + 60_000));
  server = await startFixtureServer({ root: dir });
});
beforeEach(() => {
  server.log.length = 0;
  for (const path of ["*", "/image.raw", "/mirror/image.raw", "/link.raw"]) server.behave(path, undefined);
});
after(async () => {
  for (const reader of readers) await reader.close();
  await server.close();
});

describe("openRangeReader", () => {
  it("probes byte 0 with Range and learns the size, the strong ETag, and which URL answered", async () => {
    const reader = await open(`${server.url}/image.raw`);
    assert.equal(reader.size, IMAGE.length);
    assert.match(reader.validator, /^"[0-9a-f]+-[0-9a-f]+"$/);
    assert.equal(reader.url, `${server.url}/image.raw`);
    assert.deepEqual(server.log.map((entry) => [entry.range, entry.status, entry.ifRange]), [["bytes=0-0", 206, undefined]]);
  });

  it("takes Last-Modified for If-Range when the ETag is weak", async () => {
    server.behave("/image.raw", { etag: 'W/"weak"' });
    const reader = await open(`${server.url}/image.raw`);
    assert.match(reader.validator, /GMT$/);
    assert.ok((await reader.read(10, 20)).equals(IMAGE.subarray(10, 30)));
    assert.equal(reads()[0]!.ifRange, reader.validator);
  });

  it("refuses a server that ignores Range, and one without a validator, saying why", async () => {
    server.behave("/image.raw", { ignoreRange: true });
    await assert.rejects(open(`${server.url}/image.raw`), (error: HttpError) => {
      assert.match(error.message, /image\.raw does not support HTTP Range requests, which lazy needs/);
      assert.equal(error.retryable, false);
      return true;
    });
    server.behave("/image.raw", { etag: null, noLastModified: true });
    await assert.rejects(open(`${server.url}/image.raw`), /sends neither a strong ETag nor a Last-Modified date/);
  });

  it("uses the mirror when the URL answers 404, and says so", async () => {
    const reader = await open(`${server.url}/gone/image.raw`, { mirrors: [`${server.url}/mirror/`] });
    assert.equal(reader.url, `${server.url}/mirror/image.raw`);
    assert.deepEqual(server.log.map((entry) => [entry.path, entry.status]), [["/gone/image.raw", 404], ["/mirror/image.raw", 206]]);
    assert.ok((await reader.read(1000, 5000)).equals(IMAGE.subarray(1000, 6000)));
  });

  it("names every candidate's failure, retryable when one of them may answer later", async () => {
    server.behave("/mirror/image.raw", { status: 503 });
    await assert.rejects(open(`${server.url}/gone/image.raw`, { mirrors: [`${server.url}/mirror/`] }), (error: HttpError) => {
      assert.match(error.message, /HTTP 404 Not Found from .*\/gone\/image\.raw; HTTP 503 Service Unavailable from .*\/mirror\/image\.raw/);
      assert.equal(error.retryable, true);
      return true;
    });
  });

  it("sends the URL's user name and password as Basic auth, and shows them in no message", async () => {
    server.behave("/image.raw", { basicAuth: "user:s3cret" });
    const url = `http://user:s3cret@127.0.0.1:${server.port}/image.raw`;
    const reader = await open(url);
    assert.equal(reader.url, `http://***@127.0.0.1:${server.port}/image.raw`);
    assert.ok((await reader.read(0, 100)).equals(IMAGE.subarray(0, 100)));
    server.behave("/image.raw", { status: 503 });
    await assert.rejects(reader.read(0, 100), (error: Error) => {
      assert.match(error.message, /HTTP 503/);
      assert.doesNotMatch(error.message, /s3cret/);
      return true;
    });
  });

  it("follows a redirect", async () => {
    server.behave("/link.raw", { redirectTo: "/image.raw" });
    const reader = await open(`${server.url}/link.raw`);
    assert.equal(reader.size, IMAGE.length);
    assert.ok((await reader.read(IMAGE.length - 10, 10)).equals(IMAGE.subarray(-10)));
  });
});

describe("RangeReader.read", () => {
  it("returns exactly the bytes asked for, each a Range with If-Range, many at once", async () => {
    const reader = await open(`${server.url}/image.raw`);
    const asks = Array.from({ length: 64 }, (_, i) => {
      const offset = i === 0 ? IMAGE.length - 1 : Math.floor(Math.random() * IMAGE.length);
      return { offset, length: 1 + Math.floor(Math.random() * Math.min(300_000, IMAGE.length - offset)) };
    });
    const answers = await Promise.all(asks.map(({ offset, length }) => reader.read(offset, length)));
    for (const [i, { offset, length }] of asks.entries()) assert.ok(answers[i]!.equals(IMAGE.subarray(offset, offset + length)), `read ${i}`);
    const ranges = new Set(reads().map((entry) => entry.range));
    for (const { offset, length } of asks) assert.ok(ranges.has(`bytes=${offset}-${offset + length - 1}`));
    assert.ok(reads().every((entry) => entry.ifRange === reader.validator && entry.status === 206));
    assert.equal(reader.fetchedBytes, asks.reduce((sum, ask) => sum + ask.length, 0));
    await assert.rejects(reader.read(IMAGE.length - 1, 2), RangeError);
  });

  it("fails with ImageChangedError when the image was replaced on the server, at once, without retrying", async () => {
    const reader = await open(`${server.url}/image.raw`);
    server.behave("/image.raw", { replacedBy: { path: "/other.raw", afterRequests: 0 } });
    await assert.rejects(reader.read(4096, 4096), ImageChangedError);
    assert.equal(reads().length, 1);
    // A server that ignores If-Range and sends the new file's part anyway: its ETag and size give it away.
    server.behave("/image.raw", { replacedBy: { path: "/other.raw", afterRequests: 0 }, ignoreIfRange: true });
    await assert.rejects(reader.read(4096, 4096), (error: Error) => error instanceof ImageChangedError && /bytes now/.test(error.message));
    server.behave("/image.raw", { ignoreIfRange: true, etag: '"another"' });
    await assert.rejects(reader.read(4096, 4096), (error: Error) => error instanceof ImageChangedError && /ETag "another"/.test(error.message));
  });

  it("makes one attempt: a 503 or a refused connection is a retryable HttpError, with no retry of its own", async () => {
    const reader = await open(`${server.url}/image.raw`);
    server.behave("/image.raw", { status: 503 });
    await assert.rejects(reader.read(0, 10), (error: HttpError) => error instanceof HttpError && error.retryable && error.status === 503);
    assert.equal(reads().length, 1);

    const other = await startFixtureServer({ root: dir });
    const lonely = await open(`${other.url}/image.raw`);
    await other.close();
    await assert.rejects(lonely.read(0, 10), (error: HttpError) => error instanceof HttpError && error.retryable && /ECONNREFUSED/.test(error.message));
  });

  it("moves on to the mirror when the URL starts to answer 404, with the mirror's own validator", async () => {
    const reader = await open(`${server.url}/image.raw`, { mirrors: [`${server.url}/mirror/`] });
    const origin = reader.validator;
    server.behave("/image.raw", { status: 404 });
    assert.ok((await reader.read(500, 1000)).equals(IMAGE.subarray(500, 1500)));
    assert.equal(reader.url, `${server.url}/mirror/image.raw`);
    assert.ok((await reader.read(70_000, 1000)).equals(IMAGE.subarray(70_000, 71_000)));
    const [first, second, third] = reads();
    assert.deepEqual([first!.path, first!.status], ["/image.raw", 404]);
    assert.deepEqual([second!.path, second!.status, second!.ifRange], ["/mirror/image.raw", 206, undefined], "no If-Range before the mirror's own validator is known");
    assert.deepEqual([third!.path, third!.status], ["/mirror/image.raw", 206]);
    assert.equal(third!.ifRange, reader.validator);
    assert.notEqual(reader.validator, origin);
  });

  it("fails a body that stops coming after the idle timeout, as retryable", async () => {
    const reader = await open(`${server.url}/image.raw`, { idleTimeoutMs: 300 });
    server.behave("/image.raw", { stallAt: 200_000 });
    const started = performance.now();
    await assert.rejects(reader.read(100_000, 300_000), (error: HttpError) => error.retryable && /no data for 0.3 s/.test(error.message));
    assert.ok(performance.now() - started < 2000);
  });

  it("ends a read when its signal aborts, and every read when the reader closes", async () => {
    const reader = await openRangeReader(`${server.url}/image.raw`, { idleTimeoutMs: 5000 });
    server.behave("/image.raw", { delayMs: 600 });
    const abort = new AbortController();
    const read = reader.read(0, 10, abort.signal);
    setTimeout(() => abort.abort(new Error("enough")), 50);
    await assert.rejects(read, /enough/);
    const pending = reader.read(0, 10);
    setTimeout(() => void reader.close(), 50);
    await assert.rejects(pending, /range reader closed/);
  });
});

describe("pinned host names", () => {
  /** The system's resolver, until `failing` is set: then every lookup fails, as after switch-root. */
  function switchableResolver(): { resolve: LookupFunction; calls: () => number; fail(): void } {
    let failing = false;
    let calls = 0;
    const resolve = ((hostname: string, options: object, callback: (...args: unknown[]) => void) => {
      calls++;
      if (failing) return process.nextTick(callback, Object.assign(new Error(`getaddrinfo EAI_AGAIN ${hostname}`), { code: "EAI_AGAIN" }));
      dnsLookup(hostname, options, callback as never);
    }) as LookupFunction;
    return { resolve, calls: () => calls, fail: () => (failing = true) };
  }

  it("keep resolving localhost after the resolver fails", async () => {
    const resolver = switchableResolver();
    const reader = await open(`http://localhost:${server.port}/image.raw`, { resolve: resolver.resolve, reresolveAfterMs: 0 });
    resolver.fail();
    const before = resolver.calls();
    assert.ok((await reader.read(100, 100)).equals(IMAGE.subarray(100, 200)));
    assert.ok((await reader.read(200, 100)).equals(IMAGE.subarray(200, 300)));
    assert.ok(resolver.calls() >= before + 2, "the resolver was asked, and failed");

    // Without an answer to pin, the same failure fails the open.
    const unpinned = switchableResolver();
    unpinned.fail();
    await assert.rejects(open(`http://localhost:${server.port}/image.raw`, { resolve: unpinned.resolve }), /EAI_AGAIN/);
  });

  it("use a fresh answer without asking again", async () => {
    const resolver = switchableResolver();
    const reader = await open(`http://localhost:${server.port}/image.raw`, { resolve: resolver.resolve });
    const before = resolver.calls();
    await reader.read(0, 10);
    await reader.read(10, 10);
    assert.equal(resolver.calls(), before);
  });
});
