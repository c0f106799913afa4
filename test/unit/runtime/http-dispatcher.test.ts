// The dispatcher's TLS trust (bundled CAs plus --ca-file) and proxy (--proxy, --no-proxy), against
// a real HTTPS fixture server with a certificate from a throwaway CA and a real forwarding proxy.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createDispatcher } from "../../../runtime/http-dispatcher.ts";
import { fetchSmallFile } from "../../../runtime/http-source.ts";
import { startFixtureServer, type FixtureServer } from "../../support/http-fixture-server.ts";

let dir: string;
let https: FixtureServer;
let http: FixtureServer;

/** A CA and a server certificate for 127.0.0.1 signed by it, made with openssl. */
function makeCertificates(): { ca: string; key: string; cert: string } {
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
    "-days", "2", "-subj", "/CN=netimport test CA");
  ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key", "-out", "server.csr",
    "-subj", "/CN=127.0.0.1");
  writeFileSync(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1\n");
  ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
    "-days", "2", "-extfile", "ext.cnf");
  return { ca: join(dir, "ca.pem"), key: readFileSync(join(dir, "server.key"), "utf8"), cert: readFileSync(join(dir, "server.pem"), "utf8") };
}

/** A forwarding HTTP proxy (absolute-form requests, and CONNECT tunnels for HTTPS) that records what it forwarded. */
async function startProxy(): Promise<{ server: Server; url: string; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(req.url ?? "");
    const upstream = httpRequest(req.url!, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.on("connect", (req, client: Socket, head: Buffer) => {
    seen.push(`CONNECT ${req.url}`);
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
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

let ca: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "netimport-tls-"));
  writeFileSync(join(dir, "hello.txt"), "hello over the wire\n");
  const certs = makeCertificates();
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

describe("createDispatcher: proxy", () => {
  it("sends requests through --proxy, except for --no-proxy hosts", async () => {
    const proxy = await startProxy();
    try {
      const proxied = createDispatcher({ idleTimeoutMs: 2000, proxy: proxy.url });
      const got = await fetchSmallFile(`${http.url}/hello.txt`, { dispatcher: proxied });
      await proxied.destroy();
      assert.equal(got?.data.toString(), "hello over the wire\n");
      assert.deepEqual(proxy.seen, [`${http.url}/hello.txt`]);

      const bypassed = createDispatcher({ idleTimeoutMs: 2000, proxy: proxy.url, noProxy: "example.org,127.0.0.1" });
      await fetchSmallFile(`${http.url}/hello.txt`, { dispatcher: bypassed });
      await bypassed.destroy();
      assert.equal(proxy.seen.length, 1);
    } finally {
      proxy.server.closeAllConnections();
      proxy.server.close();
    }
  });

  it("tunnels HTTPS through --proxy with CONNECT", async () => {
    const proxy = await startProxy();
    try {
      const proxied = createDispatcher({ idleTimeoutMs: 2000, proxy: proxy.url, caFile: ca });
      const got = await fetchSmallFile(`${https.url}/hello.txt`, { dispatcher: proxied });
      await proxied.destroy();
      assert.equal(got?.data.toString(), "hello over the wire\n");
      assert.deepEqual(proxy.seen, [`CONNECT ${new URL(https.url).host}`]);
    } finally {
      proxy.server.closeAllConnections();
      proxy.server.close();
    }
  });
});
