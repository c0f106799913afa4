// The dispatcher's TLS trust (bundled CAs plus --ca-file) and proxies (one per scheme, --no-proxy),
// against a real HTTPS fixture server with a certificate from a throwaway CA and real forwarding proxies.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { createDispatcher, type DispatcherOptions } from "../../../runtime/http-dispatcher.ts";
import { fetchSmallFile } from "../../../runtime/http-source.ts";
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
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "netimport-tls-"));
  writeFileSync(join(dir, "hello.txt"), "hello over the wire\n");
  const certs = makeTestCertificates(dir);
  ca = certs.ca;
  https = await startFixtureServer({ root: dir, tls: { key: certs.key, cert: certs.cert } });
  http = await startFixtureServer({ root: dir });
});
after(async () => {
  await https.close();
  await http.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("createDispatcher: TLS", () => {
  it("rejects a certificate from an unknown CA, without retrying", async () => {
    const dispatcher = createDispatcher({ idleTimeoutMs: 2000 });
    const retries: unknown[] = [];
    try {
      await assert.rejects(fetchSmallFile(`${https.url}/hello.txt`, {
        dispatcher, retries: 3, backoff: { baseMs: 10, capMs: 10 }, onRetry: (event) => event.delayMs !== undefined && retries.push(event),
      }),
        new RegExp(`(unable to verify|self.signed|UNABLE_TO|certificate).* from ${https.url}/hello.txt`, "i"));
      assert.deepEqual(retries, []);
    } finally {
      await dispatcher.destroy();
    }
  });

  it("trusts the CA from --ca-file in addition to the bundled ones", async () => {
    const dispatcher = createDispatcher({ idleTimeoutMs: 2000, caFile: ca });
    try {
      const got = await fetchSmallFile(`${https.url}/hello.txt`, { dispatcher });
      assert.equal(got?.data.toString(), "hello over the wire\n");
    } finally {
      await dispatcher.destroy();
    }
  });

  it("names an unreadable CA file", () => {
    assert.throws(() => createDispatcher({ idleTimeoutMs: 1000, caFile: join(dir, "nope.pem") }), /cannot read CA file .*nope.pem: ENOENT/);
  });
});

describe("createDispatcher: CA file", () => {
  const caFile = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const certificate = () => readFileSync(ca, "utf8");

  it("refuses a file that holds no PEM certificate: garbage, empty, a key", () => {
    for (const [name, text] of [["garbage.pem", "this is not a certificate\n"], ["empty.pem", ""], ["key.pem", readFileSync(join(dir, "ca.key"), "utf8")]] as const) {
      const path = caFile(name, text);
      assert.throws(() => createDispatcher({ idleTimeoutMs: 1000, caFile: path }), { message: `CA file ${path} holds no PEM certificate` });
    }
  });

  it("names a certificate block that does not parse, or does not end", () => {
    const broken = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    const path = caFile("broken.pem", `${certificate()}\n${broken}`);
    const line = certificate().split("\n").length + 1;
    assert.throws(() => createDispatcher({ idleTimeoutMs: 1000, caFile: path }),
      new RegExp(`^Error: CA file ${path}: certificate 2 of 2 \\(line ${line}\\) does not parse: `));
    const unended = caFile("unended.pem", `${certificate()}-----BEGIN CERTIFICATE-----\nMIIB\n`);
    assert.throws(() => createDispatcher({ idleTimeoutMs: 1000, caFile: unended }),
      { message: `CA file ${unended}: the certificate at line ${line - 1} has no END CERTIFICATE line` });
  });

  it("takes the certificates among other text (a bundle with comments, a key next to them)", async () => {
    const path = caFile("bundle.pem", `# our CA\n${readFileSync(join(dir, "ca.key"), "utf8")}${certificate()}\n# end\n`);
    const dispatcher = createDispatcher({ idleTimeoutMs: 2000, caFile: path });
    try {
      const got = await fetchSmallFile(`${https.url}/hello.txt`, { dispatcher });
      assert.equal(got?.data.toString(), "hello over the wire\n");
    } finally {
      await dispatcher.destroy();
    }
  });
});

describe("createDispatcher: a proxy per scheme", () => {
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

  /** Fetches `url` (with `mirrors`) through a dispatcher made from `options`, then closes it. */
  const fetchThrough = async (options: Omit<DispatcherOptions, "idleTimeoutMs">, url: string, mirrors?: string[]) => {
    const dispatcher = createDispatcher({ idleTimeoutMs: 2000, caFile: ca, ...options });
    try {
      return (await fetchSmallFile(url, { dispatcher, mirrors, retries: 0 }))?.data.toString();
    } finally {
      await dispatcher.destroy();
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
      assert.throws(() => createDispatcher({ idleTimeoutMs: 1000, httpsProxy: bad }),
        (error: Error) => error.message.startsWith(`invalid proxy URL ${bad.replace("user:s3cret", "***")}`) && !error.message.includes("s3cret"));
    }
  });
});
