import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createHttpClient, type HttpClient } from "../../../runtime/http-client.ts";
import { fetchSmallFile, HttpError, openHttpSource, RestartFromZero, type ConditionalRequest, type TransferOptions } from "../../../runtime/http-source.ts";
import { startFixtureServer, type FixtureServer } from "../../support/http-fixture-server.ts";
import { makeTestCertificates } from "../../support/test-certificates.ts";

const FILE = randomBytes(1 << 20);
/** Larger than everything that buffers ahead of a consumer (socket, the client, the body's high water mark). */
const BIG = Buffer.concat(Array.from({ length: 16 }, () => FILE));

async function readAll(url: string, options: Partial<TransferOptions> & { ifNoneMatch?: ConditionalRequest } = {}): Promise<Buffer> {
  const source = await openHttpSource(url, { client, idleTimeoutMs: 1000, backoff: { baseMs: 10, capMs: 50 }, ...options });
  assert.equal(source.notModified, false);
  if (source.notModified) throw new Error("unreachable");
  const chunks: Buffer[] = [];
  for await (const chunk of source.body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

let dir: string;
let server: FixtureServer;
let client: HttpClient;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "netimport-http-"));
  writeFileSync(join(dir, "image.raw"), FILE);
  writeFileSync(join(dir, "small.txt"), "hello\n");
  writeFileSync(join(dir, "big.raw"), BIG);
  // Another upload of image.raw: same size, other bytes, a later mtime (so another ETag).
  writeFileSync(join(dir, "image-v2.raw"), randomBytes(FILE.length));
  utimesSync(join(dir, "image-v2.raw"), new Date(), new Date(Date.now() + 60_000));
  server = await startFixtureServer({ root: dir });
  client = createHttpClient({ idleTimeoutMs: 1000 });
});
after(async () => {
  await client.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("openHttpSource", () => {
  it("streams the file and reports its size and ETag", async () => {
    const source = await openHttpSource(`${server.url}/image.raw`, { client });
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

  it("asks for a restart from byte 0 when the server answers a resume with the whole file", async () => {
    server.behave("/image.raw", { cutAt: [100_000], ignoreRange: true });
    await assert.rejects(readAll(`${server.url}/image.raw`), (error: Error) =>
      error instanceof RestartFromZero && error.offset === 100_000 && /answered the resume at byte 100000 with the whole file/.test(error.message));
    server.behave("/image.raw", undefined);
  });

  it("never splices two files: a 206 of a replaced file (If-Range ignored) asks for a restart", async () => {
    server.log.length = 0;
    server.behave("/image.raw", { cutAt: [300_000], ignoreIfRange: true, replacedBy: { path: "/image-v2.raw", afterRequests: 1 } });
    await assert.rejects(readAll(`${server.url}/image.raw`), (error: Error) =>
      error instanceof RestartFromZero && /answered the resume at byte 300000 with ETag ".*", not ".*": the file changed/.test(error.message));
    assert.deepEqual(server.log.map((e) => e.status), [200, 206]);
    server.behave("/image.raw", undefined);
  });

  it("a compliant server's answer to If-Range on a replaced file (200) asks for a restart", async () => {
    server.behave("/image.raw", { cutAt: [300_000], replacedBy: { path: "/image-v2.raw", afterRequests: 1 } });
    await assert.rejects(readAll(`${server.url}/image.raw`), RestartFromZero);
    server.behave("/image.raw", undefined);
  });

  it("does not resume without a validator (no ETag, no Last-Modified): no bare Range request", async () => {
    server.log.length = 0;
    server.behave("/image.raw", { cutAt: [300_000], etag: null, noLastModified: true });
    await assert.rejects(readAll(`${server.url}/image.raw`), (error: Error) =>
      error instanceof RestartFromZero && /sent neither an ETag nor a Last-Modified date, so the transfer cannot resume at byte 300000/.test(error.message));
    assert.deepEqual(server.log.map((e) => e.range), [undefined]);
    server.behave("/image.raw", undefined);
  });

  it("resumes with Last-Modified when there is no strong ETag", async () => {
    server.log.length = 0;
    server.behave("/image.raw", { cutAt: [300_000], etag: 'W/"weak"' });
    assert.ok((await readAll(`${server.url}/image.raw`)).equals(FILE));
    assert.match(server.log[1]?.ifRange ?? "", /GMT$/);
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

  it("does not follow a redirect to another scheme, and names it, without retrying", async () => {
    for (const location of ["ftp://127.0.0.1/image.raw", "data:text/plain,hello", "file:///etc/shadow"]) {
      server.log.length = 0;
      server.behave("/odd", { redirectTo: location });
      await assert.rejects(readAll(`${server.url}/odd`), (error: Error) =>
        error instanceof HttpError && !error.retryable && error.message.includes(`redirects to ${new URL(location).href}, which is not an http:// or https:// URL`));
      assert.equal(server.log.length, 1, location);
    }
    server.behave("/odd", undefined);
  });

  it("sends a URL's user name and password to its own origin only", async () => {
    const other = await startFixtureServer({ root: dir });
    try {
      server.log.length = 0;
      server.behave("/private/image.raw", { basicAuth: "alice:s3 cr3t", redirectTo: `${other.url}/image.raw` });
      const withCredentials = server.url.replace("http://", "http://alice:s3%20cr3t@");
      assert.ok((await readAll(`${withCredentials}/private/image.raw`)).equals(FILE));
      assert.equal(server.log[0]?.authorization, `Basic ${Buffer.from("alice:s3 cr3t").toString("base64")}`);
      assert.equal(other.log[0]?.authorization, undefined, "not to the origin it redirects to");
      await assert.rejects(readAll(`${server.url}/private/image.raw`), /HTTP 401 Unauthorized from/);
    } finally {
      server.behave("/private/image.raw", undefined);
      await other.close();
    }
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
    const source = await openHttpSource(`${server.url}/big.raw`, { client, idleTimeoutMs: 200, backoff: { baseMs: 10, capMs: 50 } });
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
        client, mirrors: [`${mirror.url}/m1/`, `${mirror.url}/m2`],
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
    const source = await openHttpSource(`${server.url}/image.raw`, { client, idleTimeoutMs: 30_000 });
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

  it("answers If-None-Match with not-modified, and sends it only to the URL the ETag came from", async () => {
    const url = `${server.url}/image.raw`;
    const first = await openHttpSource(url, { client });
    if (first.notModified) throw new Error("unexpected");
    first.body.destroy();
    const again = await openHttpSource(url, { client, ifNoneMatch: { url, etag: first.etag! } });
    assert.equal(again.notModified, true);
    const changed = await openHttpSource(url, { client, ifNoneMatch: { url, etag: '"other"' } });
    assert.equal(changed.notModified, false);
    if (!changed.notModified) changed.body.destroy();
    // The same ETag from another URL (a colliding ETag of another file) is never sent.
    server.log.length = 0;
    const other = await openHttpSource(url, { client, ifNoneMatch: { url: `${server.url}/big.raw`, etag: first.etag! } });
    assert.equal(other.notModified, false);
    if (!other.notModified) other.body.destroy();
    assert.equal(server.log[0]?.ifNoneMatch, undefined);
  });
});

describe("openHttpSource over https", () => {
  let tlsDir: string;
  let https: FixtureServer;
  let tlsClient: HttpClient;
  before(async () => {
    tlsDir = mkdtempSync(join(tmpdir(), "netimport-https-"));
    const certs = makeTestCertificates(tlsDir);
    mkdirSync(join(tlsDir, "srv"));
    writeFileSync(join(tlsDir, "srv", "image.raw"), FILE);
    https = await startFixtureServer({ root: join(tlsDir, "srv"), tls: { key: certs.key, cert: certs.cert } });
    tlsClient = createHttpClient({ idleTimeoutMs: 1000, caFile: certs.ca });
  });
  after(async () => {
    await tlsClient.close();
    await https.close();
    rmSync(tlsDir, { recursive: true, force: true });
  });

  it("never follows a redirect from https to plain http", async () => {
    https.behave("/image.raw", { redirectTo: `${server.url}/image.raw` });
    server.log.length = 0;
    await assert.rejects(
      readAll(`${https.url}/image.raw`, { client: tlsClient }),
      (error: Error) => error instanceof HttpError && !error.retryable
        && error.message === `${https.url}/image.raw redirects to ${server.url}/image.raw: refusing to go from https to plain http`,
    );
    assert.equal(server.log.length, 0, "the http server was never asked");
    https.behave("/image.raw", undefined);
    assert.ok((await readAll(`${https.url}/image.raw`, { client: tlsClient })).equals(FILE));
  });
});

describe("fetchSmallFile", () => {
  it("returns the data, or undefined when missing everywhere", async () => {
    const found = await fetchSmallFile(`${server.url}/small.txt`, { client });
    assert.equal(found?.data.toString(), "hello\n");
    assert.equal(await fetchSmallFile(`${server.url}/missing.txt`, { client, mirrors: [`${server.url}/x/`] }), undefined);
  });

  it("starts a small file again from byte 0 when it cannot be resumed", async () => {
    server.log.length = 0;
    server.behave("/small.txt", { cutAt: [3], etag: null, noLastModified: true });
    const found = await fetchSmallFile(`${server.url}/small.txt`, { client, backoff: { baseMs: 1, capMs: 1 } });
    assert.equal(found?.data.toString(), "hello\n");
    assert.deepEqual(server.log.map((e) => e.range), [undefined, undefined]);
    server.behave("/small.txt", undefined);
  });

  it("throws on server errors instead of treating them as missing", async () => {
    server.behave("/small.txt", { status: 500 });
    await assert.rejects(fetchSmallFile(`${server.url}/small.txt`, { client, retries: 0 }), /HTTP 500/);
    server.behave("/small.txt", undefined);
  });
});
