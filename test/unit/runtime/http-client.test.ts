// The HTTP client on real sockets: its TLS trust (bundled CAs plus --ca-file) and proxies (one per
// scheme, --no-proxy), against a real HTTPS fixture server with a certificate from a throwaway CA and
// real forwarding proxies; and its direct connections against raw servers that send bytes of our making
// (framings, what no server may send, a slow consumer, aborts, timeouts). http1-response.test.ts splits
// responses at every byte without sockets.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { createServer as createTlsServer, type TlsOptions, type TLSSocket } from "node:tls";
import { promisify } from "node:util";
import { createHttpClient, type HttpClient, type HttpClientOptions, type ResponseBody } from "../../../runtime/http-client.ts";
import { InvalidResponseError } from "../../../runtime/http1-response.ts";
import { fetchSmallFile, HttpError, type RetryEvent } from "../../../runtime/http-source.ts";
import { startFixtureServer, type FixtureServer } from "../../support/http-fixture-server.ts";
import { makeTestCertificates } from "../../support/test-certificates.ts";

let dir: string;
let https: FixtureServer;
let http: FixtureServer;


/**
 * A forwarding HTTP proxy (absolute-form requests, and CONNECT tunnels for HTTPS) that records what it
 * forwarded, and the Proxy-Authorization it was given.
 */
async function startProxy(): Promise<{ server: Server; url: string; seen: string[]; authorizations: string[] }> {
  const seen: string[] = [];
  const authorizations: string[] = [];
  const server = createServer((req, res) => {
    seen.push(req.url ?? "");
    if (req.headers["proxy-authorization"]) authorizations.push(req.headers["proxy-authorization"]);
    const upstream = httpRequest(req.url!, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.on("connect", (req, client: Socket, head: Buffer) => {
    seen.push(`CONNECT ${req.url}`);
    if (req.headers["proxy-authorization"]) authorizations.push(req.headers["proxy-authorization"]);
    const [host, port] = (req.url ?? "").split(":");
    const upstream = connect(Number(port), host!, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, authorizations };
}

let ca: string;
let serverCert: { key: string; cert: string };
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "netimport-tls-"));
  writeFileSync(join(dir, "hello.txt"), "hello over the wire\n");
  const certs = makeTestCertificates(dir);
  ca = certs.ca;
  serverCert = { key: certs.key, cert: certs.cert };
  https = await startFixtureServer({ root: dir, tls: { key: certs.key, cert: certs.cert } });
  http = await startFixtureServer({ root: dir });
});
after(async () => {
  await https.close();
  await http.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("createHttpClient: TLS", () => {
  it("rejects a certificate from an unknown CA, without retrying", async () => {
    const client = createHttpClient({ idleTimeoutMs: 2000 });
    const retries: unknown[] = [];
    try {
      await assert.rejects(fetchSmallFile(`${https.url}/hello.txt`, { client, retries: 3, backoff: { baseMs: 10, capMs: 10 }, onRetry: (event) => event.delayMs !== undefined && retries.push(event),
      }),
        new RegExp(`(unable to verify|self.signed|UNABLE_TO|certificate).* from ${https.url}/hello.txt`, "i"));
      assert.deepEqual(retries, []);
    } finally {
      await client.close();
    }
  });

  it("trusts the CA from --ca-file in addition to the bundled ones", async () => {
    const client = createHttpClient({ idleTimeoutMs: 2000, caFile: ca });
    try {
      const got = await fetchSmallFile(`${https.url}/hello.txt`, { client });
      assert.equal(got?.data.toString(), "hello over the wire\n");
    } finally {
      await client.close();
    }
  });

  it("names an unreadable CA file", () => {
    assert.throws(() => createHttpClient({ idleTimeoutMs: 1000, caFile: join(dir, "nope.pem") }), /cannot read CA file .*nope.pem: ENOENT/);
  });
});

describe("createHttpClient: CA file", () => {
  const caFile = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const certificate = () => readFileSync(ca, "utf8");

  it("refuses a file that holds no PEM certificate: garbage, empty, a key", () => {
    for (const [name, text] of [["garbage.pem", "this is not a certificate\n"], ["empty.pem", ""], ["key.pem", readFileSync(join(dir, "ca.key"), "utf8")]] as const) {
      const path = caFile(name, text);
      assert.throws(() => createHttpClient({ idleTimeoutMs: 1000, caFile: path }), { message: `CA file ${path} holds no PEM certificate` });
    }
  });

  it("names a certificate block that does not parse, or does not end", () => {
    const broken = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    const path = caFile("broken.pem", `${certificate()}\n${broken}`);
    const line = certificate().split("\n").length + 1;
    assert.throws(() => createHttpClient({ idleTimeoutMs: 1000, caFile: path }),
      new RegExp(`^Error: CA file ${path}: certificate 2 of 2 \\(line ${line}\\) does not parse: `));
    const unended = caFile("unended.pem", `${certificate()}-----BEGIN CERTIFICATE-----\nMIIB\n`);
    assert.throws(() => createHttpClient({ idleTimeoutMs: 1000, caFile: unended }),
      { message: `CA file ${unended}: the certificate at line ${line - 1} has no END CERTIFICATE line` });
  });

  it("takes the certificates among other text (a bundle with comments, a key next to them)", async () => {
    const path = caFile("bundle.pem", `# our CA\n${readFileSync(join(dir, "ca.key"), "utf8")}${certificate()}\n# end\n`);
    const client = createHttpClient({ idleTimeoutMs: 2000, caFile: path });
    try {
      const got = await fetchSmallFile(`${https.url}/hello.txt`, { client });
      assert.equal(got?.data.toString(), "hello over the wire\n");
    } finally {
      await client.close();
    }
  });
});

describe("createHttpClient: a proxy per scheme", () => {
  let plain: Awaited<ReturnType<typeof startProxy>>;
  let tunnel: Awaited<ReturnType<typeof startProxy>>;
  before(async () => {
    plain = await startProxy();
    tunnel = await startProxy();
    writeFileSync(join(dir, "mirror-only.txt"), "from the mirror\n");
  });
  after(() => {
    for (const proxy of [plain, tunnel]) {
      proxy.server.closeAllConnections();
      proxy.server.close();
    }
  });
  beforeEach(() => {
    plain.seen.length = 0;
    tunnel.seen.length = 0;
    http.behave("/mirror-only.txt", undefined);
    http.behave("/moved.txt", undefined);
  });
  const connectTo = (server: FixtureServer) => `CONNECT ${new URL(server.url).host}`;

  /** Fetches `url` (with `mirrors`) through a client made from `options`, then closes it. */
  const fetchThrough = async (options: Omit<HttpClientOptions, "idleTimeoutMs">, url: string, mirrors?: string[]) => {
    const client = createHttpClient({ idleTimeoutMs: 2000, caFile: ca, ...options });
    try {
      return (await fetchSmallFile(url, { client, mirrors, retries: 0 }))?.data.toString();
    } finally {
      await client.close();
    }
  };

  it("sends http:// through the http proxy and tunnels https:// through the https proxy", async () => {
    const proxies = { httpProxy: plain.url, httpsProxy: tunnel.url };
    assert.equal(await fetchThrough(proxies, `${http.url}/hello.txt`), "hello over the wire\n");
    assert.equal(await fetchThrough(proxies, `${https.url}/hello.txt`), "hello over the wire\n");
    assert.deepEqual(plain.seen, [`${http.url}/hello.txt`]);
    assert.deepEqual(tunnel.seen, [connectTo(https)]);
  });

  it("an https mirror of an http image, and an https redirect target, go through the https proxy", async () => {
    const proxies = { httpProxy: plain.url, httpsProxy: tunnel.url };
    http.behave("/mirror-only.txt", { status: 404 });
    assert.equal(await fetchThrough(proxies, `${http.url}/mirror-only.txt`, [`${https.url}/`]), "from the mirror\n");
    assert.deepEqual(plain.seen, [`${http.url}/mirror-only.txt`]);
    assert.deepEqual(tunnel.seen, [connectTo(https)]);

    http.behave("/moved.txt", { redirectTo: `${https.url}/hello.txt` });
    assert.equal(await fetchThrough(proxies, `${http.url}/moved.txt`), "hello over the wire\n");
    assert.deepEqual(plain.seen, [`${http.url}/mirror-only.txt`, `${http.url}/moved.txt`]);
    assert.deepEqual(tunnel.seen, [connectTo(https), connectTo(https)]);
  });

  it("a scheme without a proxy of its own goes direct, whatever the other has or the environment says", async () => {
    const saved = { http_proxy: process.env.http_proxy, https_proxy: process.env.https_proxy };
    process.env.http_proxy = tunnel.url;
    process.env.https_proxy = plain.url;
    try {
      assert.equal(await fetchThrough({ httpProxy: plain.url }, `${https.url}/hello.txt`), "hello over the wire\n");
      assert.equal(await fetchThrough({ httpProxy: plain.url }, `${http.url}/hello.txt`), "hello over the wire\n");
      assert.deepEqual(plain.seen, [`${http.url}/hello.txt`]);
      assert.equal(await fetchThrough({ httpsProxy: tunnel.url }, `${http.url}/hello.txt`), "hello over the wire\n");
      assert.equal(await fetchThrough({ httpsProxy: tunnel.url }, `${https.url}/hello.txt`), "hello over the wire\n");
      assert.deepEqual(tunnel.seen, [connectTo(https)]);
      assert.equal(plain.seen.length, 1);
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it("sends hosts in --no-proxy direct, for either scheme", async () => {
    const proxies = { httpProxy: plain.url, httpsProxy: tunnel.url, noProxy: "example.org,127.0.0.1" };
    assert.equal(await fetchThrough(proxies, `${http.url}/hello.txt`), "hello over the wire\n");
    assert.equal(await fetchThrough(proxies, `${https.url}/hello.txt`), "hello over the wire\n");
    assert.deepEqual([...plain.seen, ...tunnel.seen], []);
  });

  it("uses a proxy URL's credentials, and shows none of them in its errors", async () => {
    const withPassword = (proxy: string) => proxy.replace("http://", "http://user:s%40cret@");
    const expected = `Basic ${Buffer.from("user:s@cret").toString("base64")}`;
    await fetchThrough({ httpProxy: withPassword(plain.url), httpsProxy: withPassword(tunnel.url) }, `${https.url}/hello.txt`);
    assert.deepEqual(tunnel.authorizations, [expected]);
    for (const bad of ["http://user:s3cret@[::1", "ftp://user:s3cret@proxy.example/"]) {
      assert.throws(() => createHttpClient({ idleTimeoutMs: 1000, httpsProxy: bad }),
        (error: Error) => error.message.startsWith(`invalid proxy URL ${bad.replace("user:s3cret", "***")}`) && !error.message.includes("s3cret"));
    }
  });
});

interface RawServer {
  url: string;
  port: number;
  /** The request heads received (without the final CRLFCRLF). */
  requests: string[];
  /** Connections accepted (TLS: handshakes completed), and those still open. */
  connections: number;
  open: Set<Socket>;
  close(): Promise<void>;
}

/**
 * A server that answers with bytes of our making: `respond` gets each connection once its request head
 * arrived (`silent`: never reads, never answers; with TLS without `tls`: not even a handshake).
 */
async function rawServer(respond: ((socket: Socket, request: string) => void) | "silent", options: { tls?: TlsOptions; host?: string } = {}): Promise<RawServer> {
  const self: RawServer = { url: "", port: 0, requests: [], connections: 0, open: new Set(), close: async () => undefined };
  const onConnection = (socket: Socket) => {
    self.connections++;
    self.open.add(socket);
    socket.on("close", () => self.open.delete(socket));
    socket.on("error", () => undefined);
    if (respond === "silent") return;
    let head = "";
    const onData = (data: Buffer) => {
      head += data.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      self.requests.push(head.slice(0, end));
      respond(socket, head.slice(0, end));
    };
    socket.on("data", onData);
  };
  const server: NetServer = options.tls ? createTlsServer(options.tls, onConnection) : createNetServer(onConnection);
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, host, resolve));
  self.port = (server.address() as AddressInfo).port;
  self.url = `${options.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${self.port}`;
  self.close = async () => {
    for (const socket of self.open) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return self;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const readBody = async (body: ResponseBody) => Buffer.concat(await body.toArray());
/** Resolves once `server` has no open connection (the client closed its end), or fails after 1 s. */
async function allClosed(server: RawServer): Promise<void> {
  for (let waited = 0; server.open.size > 0; waited += 10) {
    if (waited > 1000) throw new Error(`${server.open.size} connection(s) still open`);
    await sleep(10);
  }
}
/** Writes `data` in pieces of 1 to 7 bytes, each in a TCP segment of its own as far as Nagle allows. */
async function trickle(socket: Socket, data: Buffer): Promise<void> {
  socket.setNoDelay(true);
  for (let at = 0, n = 1; at < data.length; at += n, n = (n % 7) + 1) {
    socket.write(data.subarray(at, at + n));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe("createHttpClient: direct connections", () => {
  let client: HttpClient;
  const servers: RawServer[] = [];
  const serve = async (...args: Parameters<typeof rawServer>) => {
    const server = await rawServer(...args);
    servers.push(server);
    return server;
  };
  before(() => {
    client = createHttpClient({ idleTimeoutMs: 2000, caFile: ca });
  });
  after(() => client.close());
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  it("sends one GET: the path and query, Host with the port, the headers, Connection: close", async () => {
    const server = await serve((socket) => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Twice: a\r\nx-twice: b\r\n\r\nok"));
    const response = await client.request(`${server.url}/dir/os%20.raw?x=1&y#fragment`, { headers: { "user-agent": "netimport", range: "bytes=5-" } });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.headers["x-twice"], ["a", "b"]);
    assert.equal((await readBody(response.body)).toString(), "ok");
    assert.deepEqual(server.requests, [
      `GET /dir/os%20.raw?x=1&y HTTP/1.1\r\nhost: 127.0.0.1:${server.port}\r\nuser-agent: netimport\r\nrange: bytes=5-\r\nconnection: close`,
    ]);
    await assert.rejects(client.request(`${server.url}/`, { headers: { "x-evil": "a\r\nhost: elsewhere" } }), /invalid request header "x-evil"/);
    await assert.rejects(client.request("ftp://127.0.0.1/", { headers: {} }), /not an http:\/\/ or https:\/\/ URL/);
  });

  it("connects to an IPv6 literal and names it in Host", async (t) => {
    let server: RawServer;
    try {
      server = await serve((socket) => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6"), { host: "::1" });
    } catch (error) {
      t.skip(`no IPv6 loopback: ${(error as Error).message}`);
      return;
    }
    const response = await client.request(`${server.url}/x`, { headers: {} });
    assert.equal((await readBody(response.body)).toString(), "v6");
    assert.match(server.requests[0]!, new RegExp(`^GET /x HTTP/1.1\r\nhost: \\[::1\\]:${server.port}\r\n`));
  });

  it("reads a chunked body sent a few bytes at a time, trailers and all", async () => {
    const response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      + "5;ext=1\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n10\r\n0123456789abcdef\r\n0\r\nX-Checksum: 1\r\n\r\n";
    const server = await serve((socket) => void trickle(socket, Buffer.from(response)).then(() => socket.end()));
    const got = await client.request(`${server.url}/`, { headers: {} });
    assert.equal(got.headers["transfer-encoding"], "chunked");
    assert.equal((await readBody(got.body)).toString(), "hello, world0123456789abcdef");
  });

  it("reads a body without length until the server closes", async () => {
    const server = await serve((socket) => {
      socket.write("HTTP/1.0 200 OK\r\nServer: old\r\n\r\nuntil ");
      setTimeout(() => socket.end("close"), 20);
    });
    assert.equal((await readBody((await client.request(`${server.url}/`, { headers: {} })).body)).toString(), "until close");
  });

  it("fails a body cut short of its Content-Length, naming the bytes and the URL; http-source retries it", async () => {
    const server = await serve((socket) => socket.end(`HTTP/1.1 200 OK\r\nContent-Length: 456\r\n\r\n${"x".repeat(123)}`));
    const response = await client.request(`${server.url}/cut`, { headers: {} });
    await assert.rejects(readBody(response.body), { message: `connection closed after 123 of 456 bytes from ${server.url}/cut` });

    let requests = 0;
    const flaky = await serve((socket) => socket.end(++requests === 1
      ? "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234"
      : "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"));
    const events: RetryEvent[] = [];
    const got = await fetchSmallFile(`${flaky.url}/sums`, { client, backoff: { baseMs: 1, capMs: 1 }, onRetry: (event) => events.push(event) });
    assert.equal(got?.data.toString(), "0123456789");
    assert.equal(events[0]?.error.message, `connection closed after 5 of 10 bytes from ${flaky.url}/sums`);
    assert.ok(events[0]?.delayMs !== undefined, "retried on the same URL");
  });

  it("refuses what no server may send, with a clear error, and http-source does not retry it", async () => {
    const cases: [string, RegExp][] = [
      ["HTTP/1.1 2OO OK\r\n\r\n", /^invalid status line "HTTP\/1.1 2OO OK" from /],
      ["HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n", /^invalid Content-Length "12abc" from /],
      ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", /^response with both Transfer-Encoding and Content-Length from /],
      ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n", /^conflicting Content-Length values "5, 7" from /],
      ["HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\n\r\n", /^folded header line/],
      [`HTTP/1.1 200 OK\r\n${"X-Big: yyyyyyyyyyyyyyyy\r\n".repeat(3000)}`, /^response headers larger than 64 KiB from /],
    ];
    for (const [bytes, message] of cases) {
      const server = await serve((socket) => socket.write(bytes)); // and keep the connection open
      await assert.rejects(client.request(`${server.url}/x`, { headers: {} }), (error: Error) => error instanceof InvalidResponseError && message.test(error.message), bytes.slice(0, 40));
      await allClosed(server);
      const events: RetryEvent[] = [];
      await assert.rejects(fetchSmallFile(`${server.url}/x`, { client, retries: 3, backoff: { baseMs: 1, capMs: 1 }, onRetry: (event) => events.push(event) }),
        (error: Error) => error instanceof HttpError && !error.retryable && message.test(error.message) && error.message.endsWith(`from ${server.url}/x`));
      assert.equal(server.requests.length, 2, "no retry");
    }
    // In the body: a bad chunk size fails the body.
    const server = await serve((socket) => socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"));
    const response = await client.request(`${server.url}/chunks`, { headers: {} });
    await assert.rejects(readBody(response.body), { message: `invalid chunk size "zz" (after 5 bytes) from ${server.url}/chunks` });
    await allClosed(server);
  });

  it("ends a 204 or 304 at its head, though the server announces a length and keeps the connection open", async () => {
    for (const head of ["HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n"]) {
      const server = await serve((socket) => socket.write(head));
      const response = await client.request(`${server.url}/`, { headers: {} });
      assert.equal((await readBody(response.body)).length, 0);
      await allClosed(server);
    }
  });

  it("skips 100 Continue and 103 Early Hints", async () => {
    const server = await serve((socket) => {
      socket.write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n");
      setTimeout(() => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"), 20);
    });
    const response = await client.request(`${server.url}/`, { headers: {} });
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers.link, undefined);
    assert.equal((await readBody(response.body)).toString(), "final");
  });

  it("holds a fast server back while the consumer is slow: the server's writes block", async () => {
    const total = 64 << 20;
    const piece = Buffer.alloc(1 << 20, 7);
    let written = 0;
    const server = await serve((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${total}\r\n\r\n`);
      const pump = () => {
        while (written < total) {
          written += piece.length;
          if (!socket.write(piece)) return void socket.once("drain", pump);
        }
      };
      pump();
    });
    const response = await client.request(`${server.url}/big`, { headers: {} });
    const chunks = response.body[Symbol.asyncIterator]();
    await chunks.next();
    await sleep(300);
    const ahead = written;
    // What is in flight: the kernel's socket buffers on both ends (a few MiB on loopback), the slab
    // being read into, and the body's buffer (1 MiB), far from the 64 MiB the server has to send.
    assert.ok(ahead < 24 << 20, `the server wrote ${ahead >> 20} MiB ahead of a consumer that read one chunk`);
    let received = 0;
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) received += (next.value as Buffer).length;
    assert.ok(received > total - ahead, "and the rest arrives once the consumer reads");
  });

  it("never writes over a chunk it handed on: every chunk of a multi-MiB body, held to the end, is intact", async () => {
    const source = randomBytes(6 << 20);
    const server = await serve(async (socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${source.length}\r\n\r\n`);
      // Writes of many sizes, so that reads end anywhere in the slabs.
      for (let at = 0, n = 1000; at < source.length; at += n, n = (n * 7) % 300_000 + 1) {
        if (!socket.write(source.subarray(at, at + n))) await new Promise((resolve) => socket.once("drain", resolve));
      }
      socket.end();
    });
    const chunks: Buffer[] = [];
    for await (const chunk of (await client.request(`${server.url}/`, { headers: {} })).body) chunks.push(chunk as Buffer);
    assert.ok(Buffer.concat(chunks).equals(source));
    // No two chunks share a byte of memory.
    const regions = chunks.map((c) => [c.buffer, c.byteOffset, c.byteOffset + c.length] as const);
    for (const [buffer, start, end] of regions) {
      assert.equal(regions.filter(([b, s, e]) => b === buffer && s < end && start < e).length, 1);
    }
  });

  it("over TLS with the CA file: SNI for a host name, none for an IP; the body intact", async () => {
    const source = randomBytes(3 << 20);
    const names: unknown[] = [];
    const server = await serve((socket) => {
      names.push((socket as TLSSocket).servername);
      socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${source.length}\r\n\r\n`), source]));
    }, { tls: { ...serverCert, SNICallback: (name, callback) => (names.push(`SNI ${name}`), callback(null, undefined)) } });
    const chunks: Buffer[] = [];
    for await (const chunk of (await client.request(`${server.url}/`, { headers: {} })).body) chunks.push(chunk as Buffer);
    assert.ok(Buffer.concat(chunks).equals(source));
    assert.deepEqual(names, [false]);
    // The certificate is for 127.0.0.1 only: asked as localhost, the client sends the name and refuses the answer.
    await assert.rejects(client.request(`https://localhost:${server.port}/`, { headers: {} }), { code: "ERR_TLS_CERT_ALTNAME_INVALID" });
    assert.deepEqual(names, [false, "SNI localhost"]);
    const untrusting = createHttpClient({ idleTimeoutMs: 2000 });
    await assert.rejects(untrusting.request(`${server.url}/`, { headers: {} }), { code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
    await untrusting.close();
  });

  it("keeps Node's error code for a refused connection", async () => {
    const server = await serve("silent");
    const url = server.url;
    await server.close();
    await assert.rejects(client.request(`${url}/`, { headers: {} }), { code: "ECONNREFUSED" });
  });

  it("aborts: before connecting, while connecting, waiting for the headers, in the body", async () => {
    const reason = new Error("stop");
    const silent = await serve("silent");
    await assert.rejects(client.request(`${silent.url}/`, { headers: {}, signal: AbortSignal.abort(reason) }), (error) => error === reason);
    await sleep(20);
    assert.equal(silent.connections, 0, "an aborted signal opens no connection");

    // Connecting: the TCP connect is under way when abort() comes; a TLS handshake nobody answers.
    let controller = new AbortController();
    let pending = client.request(`${silent.url}/`, { headers: {}, signal: controller.signal });
    controller.abort(reason);
    await assert.rejects(pending, (error) => error === reason);
    controller = new AbortController();
    pending = client.request(`https://127.0.0.1:${silent.port}/`, { headers: {}, signal: controller.signal });
    setTimeout(() => controller.abort(reason), 30);
    await assert.rejects(pending, (error) => error === reason);

    // The headers.
    const mute = await serve(() => undefined);
    controller = new AbortController();
    pending = client.request(`${mute.url}/`, { headers: {}, signal: controller.signal });
    setTimeout(() => controller.abort(reason), 30);
    await assert.rejects(pending, (error) => error === reason);
    await allClosed(mute);

    // The body.
    const stalling = await serve((socket) => socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n${"x".repeat(1000)}`));
    controller = new AbortController();
    const response = await client.request(`${stalling.url}/`, { headers: {}, signal: controller.signal });
    const chunks = response.body[Symbol.asyncIterator]();
    assert.equal(((await chunks.next()).value as Buffer).length, 1000);
    setTimeout(() => controller.abort(reason), 30);
    await assert.rejects(chunks.next(), (error) => error === reason);
    await allClosed(stalling);
  });

  it("times out a connection that does not complete, and headers that do not come", async () => {
    const quick = createHttpClient({ idleTimeoutMs: 150 });
    try {
      const silent = await serve("silent");
      await assert.rejects(quick.request(`https://127.0.0.1:${silent.port}/os.raw`, { headers: {} }),
        { message: `no connection to 127.0.0.1:${silent.port} within 0.15 s for https://127.0.0.1:${silent.port}/os.raw` });
      const mute = await serve(() => undefined);
      const started = performance.now();
      await assert.rejects(quick.request(`${mute.url}/os.raw`, { headers: {} }), { message: `no response headers within 0.15 s from ${mute.url}/os.raw` });
      assert.ok(performance.now() - started >= 140);
      await allClosed(mute);
    } finally {
      await quick.close();
    }
  });

  it("closes the connection at once when the body is destroyed, or dumped before its end", async () => {
    const server = await serve((socket) => socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n${"x".repeat(1000)}`));
    const destroyed = await client.request(`${server.url}/`, { headers: {} });
    destroyed.body.destroy();
    await allClosed(server);
    const dumped = await client.request(`${server.url}/`, { headers: {} });
    await dumped.body.dump();
    await allClosed(server);
    // A body that is all here is drained.
    const small = await serve((socket) => socket.write("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"));
    const notFound = await client.request(`${small.url}/`, { headers: {} });
    await notFound.body.dump();
    assert.ok(notFound.body.readableEnded);
    await allClosed(small);
  });

  it("close() ends what is still open", async () => {
    const closing = createHttpClient({ idleTimeoutMs: 2000 });
    const mute = await serve(() => undefined);
    const pending = closing.request(`${mute.url}/`, { headers: {} });
    await sleep(20);
    await closing.close();
    await assert.rejects(pending, /HTTP client closed/);
    await allClosed(mute);
  });

  it("never loads undici without a proxy for the request's scheme", async () => {
    const script = `
      import { createServer } from "node:http";
      import { createRequire } from "node:module";
      import { createHttpClient } from ${JSON.stringify(new URL("../../../runtime/http-client.ts", import.meta.url).href)};
      const undiciModules = () => Object.keys(createRequire(import.meta.url).cache).filter((path) => path.includes("/undici/")).length;
      const server = createServer((req, res) => res.end("ok"));
      await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
      const client = createHttpClient({ idleTimeoutMs: 2000, httpsProxy: "http://127.0.0.1:9" });
      const response = await client.request("http://127.0.0.1:" + server.address().port + "/", { headers: {} });
      await response.body.dump();
      await client.close();
      server.close();
      const before = undiciModules();
      await import("undici");
      console.log(JSON.stringify([before, undiciModules() > 0]));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script]);
    assert.deepEqual(JSON.parse(stdout), [0, true]);
  });
});
