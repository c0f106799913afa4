import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent } from "undici";
import { fetchSmallFile, openHttpSource, type TransferOptions } from "../../../runtime/http-source.ts";
import { startFixtureServer, type FixtureServer } from "../../support/http-fixture-server.ts";

const FILE = randomBytes(1 << 20);
/** Larger than everything that buffers ahead of a consumer (socket, undici, the body's high water mark). */
const BIG = Buffer.concat(Array.from({ length: 16 }, () => FILE));

async function readAll(url: string, options: Partial<TransferOptions> & { ifNoneMatch?: string } = {}): Promise<Buffer> {
  const source = await openHttpSource(url, { dispatcher, idleTimeoutMs: 1000, backoff: { baseMs: 10, capMs: 50 }, ...options });
  assert.equal(source.notModified, false);
  if (source.notModified) throw new Error("unreachable");
  const chunks: Buffer[] = [];
  for await (const chunk of source.body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

let dir: string;
let server: FixtureServer;
let dispatcher: Agent;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "netimport-http-"));
  writeFileSync(join(dir, "image.raw"), FILE);
  writeFileSync(join(dir, "small.txt"), "hello\n");
  writeFileSync(join(dir, "big.raw"), BIG);
  server = await startFixtureServer({ root: dir });
  dispatcher = new Agent({ headersTimeout: 1000, bodyTimeout: 0 });
});
after(async () => {
  await dispatcher.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("openHttpSource", () => {
  it("streams the file and reports its size and ETag", async () => {
    const source = await openHttpSource(`${server.url}/image.raw`, { dispatcher });
    assert.equal(source.notModified, false);
    if (source.notModified) return;
    assert.equal(source.size, FILE.length);
    assert.match(source.etag ?? "", /^"/);
    const chunks: Buffer[] = [];
    for await (const chunk of source.body) chunks.push(chunk as Buffer);
    assert.ok(Buffer.concat(chunks).equals(FILE));
  });

  it("resumes with Range and If-Range after the connection is cut, never repeating a byte", async () => {
    server.log.length = 0;
    server.behave("/image.raw", { cutAt: [1, 70_000, 500_000, FILE.length - 1] });
    const data = await readAll(`${server.url}/image.raw`);
    server.behave("/image.raw", undefined);
    assert.ok(data.equals(FILE));
    const ranges = server.log.filter((e) => e.range).map((e) => e.range);
    assert.deepEqual(ranges, ["bytes=1-", "bytes=70000-", "bytes=500000-", `bytes=${FILE.length - 1}-`]);
    assert.ok(server.log.filter((e) => e.range).every((e) => e.ifRange?.startsWith('"')));
  });

  it("fails clearly when the server answers a resume with the whole file", async () => {
    server.behave("/image.raw", { cutAt: [100_000], ignoreRange: true });
    await assert.rejects(readAll(`${server.url}/image.raw`), /answered a resume request \(at byte 100000\) with the whole file/);
    server.behave("/image.raw", undefined);
  });

  it("does not retry 404 on the same URL and names URL and status", async () => {
    server.log.length = 0;
    await assert.rejects(readAll(`${server.url}/nope.raw`), { message: `HTTP 404 Not Found from ${server.url}/nope.raw` });
    assert.equal(server.log.length, 1);
  });

  it("retries 500 with backoff, then succeeds", async () => {
    server.log.length = 0;
    server.behave("/image.raw", { status: 500, statusTimes: 2 });
    const data = await readAll(`${server.url}/image.raw`);
    assert.ok(data.equals(FILE));
    assert.deepEqual(server.log.map((e) => e.status), [500, 500, 200]);
    server.behave("/image.raw", undefined);
  });

  it("gives up after the retry budget with the last status", async () => {
    server.log.length = 0;
    server.behave("/image.raw", { status: 503 });
    await assert.rejects(readAll(`${server.url}/image.raw`, { retries: 2 }), { message: `HTTP 503 Service Unavailable from ${server.url}/image.raw` });
    assert.equal(server.log.length, 3);
    server.behave("/image.raw", undefined);
  });

  it("follows redirects and detects loops", async () => {
    server.behave("/a", { redirectTo: "/b" });
    server.behave("/b", { redirectTo: "/image.raw" });
    assert.ok((await readAll(`${server.url}/a`)).equals(FILE));
    server.behave("/b", { redirectTo: "/a" });
    await assert.rejects(readAll(`${server.url}/a`), /redirect loop/);
    server.behave("/a", undefined);
    server.behave("/b", undefined);
  });

  it("bounds the number of redirects", async () => {
    for (let i = 0; i < 5; i++) server.behave(`/r${i}`, { redirectTo: `/r${i + 1}` });
    await assert.rejects(readAll(`${server.url}/r0`, { maxRedirects: 3 }), /too many redirects/);
  });

  it("times out an idle connection and resumes", async () => {
    server.log.length = 0;
    server.behave("/image.raw", { stallAt: 300_000 });
    const started = Date.now();
    const data = await readAll(`${server.url}/image.raw`, { idleTimeoutMs: 500 });
    assert.ok(data.equals(FILE));
    assert.ok(Date.now() - started >= 450);
    assert.deepEqual(server.log.map((e) => e.range), [undefined, "bytes=300000-"]);
    server.behave("/image.raw", undefined);
  });

  it("does not count the consumer's own pauses as idle time", async () => {
    server.log.length = 0;
    const source = await openHttpSource(`${server.url}/big.raw`, { dispatcher, idleTimeoutMs: 200, backoff: { baseMs: 10, capMs: 50 } });
    if (source.notModified) throw new Error("unreachable");
    const chunks: Buffer[] = [];
    for await (const chunk of source.body) {
      chunks.push(chunk as Buffer);
      if (chunks.length === 1) await new Promise((resolve) => setTimeout(resolve, 500));
    }
    assert.ok(Buffer.concat(chunks).equals(BIG));
    assert.deepEqual(server.log.map((e) => e.range), [undefined], "one request, no idle timeout and resume");
  });

  it("fails when the body is shorter than Content-Length and cannot be completed", async () => {
    server.behave("/image.raw", { extraContentLength: 100 });
    await assert.rejects(readAll(`${server.url}/image.raw`, { idleTimeoutMs: 300, retries: 1 }), /416 Range Not Satisfiable/);
    server.behave("/image.raw", undefined);
  });

  it("tries mirrors in order after a 404", async () => {
    const mirror = await startFixtureServer({ root: dir });
    try {
      mirror.behave("/m1/image.raw", { status: 404 });
      mirror.behave("/m2/image.raw", { redirectTo: "/image.raw" });
      const source = await openHttpSource(`${server.url}/gone/image.raw`, {
        dispatcher, mirrors: [`${mirror.url}/m1/`, `${mirror.url}/m2`],
      });
      assert.equal(source.notModified, false);
      if (source.notModified) return;
      assert.equal(source.url, `${mirror.url}/m2/image.raw`);
      source.body.destroy();
      await assert.rejects(readAll(`${server.url}/gone/image.raw`, { mirrors: [`${mirror.url}/m1/`] }),
        { message: `HTTP 404 Not Found from ${server.url}/gone/image.raw; HTTP 404 Not Found from ${mirror.url}/m1/image.raw` });
    } finally {
      await mirror.close();
    }
  });

  it("stops at once when the consumer destroys the stream during a stall", async () => {
    server.behave("/image.raw", { stallAt: 200_000 });
    const source = await openHttpSource(`${server.url}/image.raw`, { dispatcher, idleTimeoutMs: 30_000 });
    if (source.notModified) throw new Error("unexpected");
    let received = 0;
    const started = Date.now();
    await new Promise<void>((resolve) => {
      source.body.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received >= 200_000) setTimeout(() => source.body.destroy(), 100);
      });
      source.body.on("close", resolve);
    });
    assert.equal(received, 200_000);
    assert.ok(Date.now() - started < 2000);
    server.behave("/image.raw", undefined);
  });

  it("resumes on a mirror when the origin fails mid-transfer", async () => {
    const mirror = await startFixtureServer({ root: dir });
    try {
      server.log.length = 0;
      server.behave("/image.raw", { cutAt: [300_000], status: 503, statusAfter: 1 });
      const data = await readAll(`${server.url}/image.raw`, { retries: 1, mirrors: [`${mirror.url}/`] });
      assert.ok(data.equals(FILE));
      assert.deepEqual(server.log.map((e) => [e.status, e.range]), [[200, undefined], [503, "bytes=300000-"]]);
      assert.deepEqual(mirror.log.map((e) => [e.status, e.range, e.ifRange?.startsWith('"')]), [[206, "bytes=300000-", true]]);
    } finally {
      server.behave("/image.raw", undefined);
      await mirror.close();
    }
  });

  it("answers If-None-Match with not-modified", async () => {
    const first = await openHttpSource(`${server.url}/image.raw`, { dispatcher });
    if (first.notModified) throw new Error("unexpected");
    first.body.destroy();
    const again = await openHttpSource(`${server.url}/image.raw`, { dispatcher, ifNoneMatch: first.etag });
    assert.equal(again.notModified, true);
    const changed = await openHttpSource(`${server.url}/image.raw`, { dispatcher, ifNoneMatch: '"other"' });
    assert.equal(changed.notModified, false);
    if (!changed.notModified) changed.body.destroy();
  });
});

describe("fetchSmallFile", () => {
  it("returns the data, or undefined when missing everywhere", async () => {
    const found = await fetchSmallFile(`${server.url}/small.txt`, { dispatcher });
    assert.equal(found?.data.toString(), "hello\n");
    assert.equal(await fetchSmallFile(`${server.url}/missing.txt`, { dispatcher, mirrors: [`${server.url}/x/`] }), undefined);
  });

  it("throws on server errors instead of treating them as missing", async () => {
    server.behave("/small.txt", { status: 500 });
    await assert.rejects(fetchSmallFile(`${server.url}/small.txt`, { dispatcher, retries: 0 }), /HTTP 500/);
    server.behave("/small.txt", undefined);
  });
});
