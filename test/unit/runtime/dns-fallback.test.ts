import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createServerLookup, fallbackDnsServers } from "../../../runtime/dns-fallback.ts";
import { createHttpClient } from "../../../runtime/http-client.ts";
import { startFixtureServer, type FixtureServer } from "../../support/http-fixture-server.ts";

/** A tiny real DNS server: answers A queries for known names, NXDOMAIN for the rest. */
async function startDnsServer(address: string, port: number, names: Record<string, string>): Promise<{ socket: Socket; port: number; queries: string[] }> {
  const socket = createSocket("udp4");
  const queries: string[] = [];
  socket.on("message", (query, peer) => {
    let at = 12;
    const labels: string[] = [];
    while (query[at]) {
      labels.push(query.subarray(at + 1, at + 1 + query[at]!).toString("latin1"));
      at += query[at]! + 1;
    }
    const questionEnd = at + 5;
    const type = query.readUInt16BE(at + 1);
    const name = labels.join(".");
    queries.push(`${name}/${type}`);
    const ip = names[name];
    const header = Buffer.from(query.subarray(0, 12));
    header.writeUInt16BE(0x8180 | (ip ? 0 : 3), 2); // response, RD+RA, NOERROR or NXDOMAIN
    header.writeUInt16BE(1, 4);
    const answer = ip && type === 1
      ? Buffer.concat([Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]), Buffer.from(ip.split(".").map(Number))])
      : Buffer.alloc(0);
    header.writeUInt16BE(answer.length ? 1 : 0, 6);
    header.writeUInt32BE(0, 8);
    socket.send(Buffer.concat([header, query.subarray(12, questionEnd), answer]), peer.port, peer.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(port, address, () => resolve());
  });
  return { socket, port: socket.address().port, queries };
}

let dir: string;
let http: FixtureServer;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "netimport-dns-"));
  mkdirSync(join(dir, "leases"));
  writeFileSync(join(dir, "file.txt"), "resolved\n");
  http = await startFixtureServer({ root: dir });
});
after(async () => {
  await http.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the files fallbackDnsServers reads", () => {
  it("resolv.conf counts only with a nameserver line; leases give DNS= addresses, /proc/net/pnp its nameservers but 0.0.0.0", () => {
    const own = mkdtempSync(join(dir, "parsers-"));
    mkdirSync(join(own, "leases"));
    const paths = { resolvConf: join(own, "resolv.conf"), leasesDir: join(own, "leases"), procNetPnp: join(own, "pnp") };
    writeFileSync(join(own, "leases", "1"), "ADDRESS=10.0.2.15\nDNS=10.0.2.3 fec0::3\nNTP=1.2.3.4\n");
    writeFileSync(join(own, "pnp"), "#PROTO: DHCP\ndomain example\nnameserver 10.0.2.4\nnameserver 0.0.0.0\nbootserver 10.0.2.2\n");
    writeFileSync(paths.resolvConf, "# none\nsearch x\n");
    assert.deepEqual(fallbackDnsServers(paths), ["10.0.2.3", "fec0::3", "10.0.2.4"]);
    writeFileSync(paths.resolvConf, "nameserver 10.0.2.3\n");
    assert.equal(fallbackDnsServers(paths), undefined);
  });
});

describe("fallbackDnsServers", () => {
  const paths = () => ({ resolvConf: join(dir, "resolv.conf"), leasesDir: join(dir, "leases"), procNetPnp: join(dir, "pnp") });
  it("is not used when resolv.conf names a server", () => {
    writeFileSync(join(dir, "resolv.conf"), "nameserver 1.1.1.1\n");
    writeFileSync(join(dir, "leases", "2"), "DNS=10.0.2.3\n");
    assert.equal(fallbackDnsServers(paths()), undefined);
  });
  it("takes lease DNS= and then /proc/net/pnp when resolv.conf is missing or empty", () => {
    writeFileSync(join(dir, "resolv.conf"), "");
    writeFileSync(join(dir, "leases", "3"), "DNS=10.0.9.9 10.0.2.3\n");
    writeFileSync(join(dir, "pnp"), "nameserver 192.168.1.1\n");
    assert.deepEqual(fallbackDnsServers(paths()), ["10.0.2.3", "10.0.9.9", "192.168.1.1"]);
    rmSync(join(dir, "resolv.conf"));
    rmSync(join(dir, "leases"), { recursive: true });
    assert.deepEqual(fallbackDnsServers(paths()), ["192.168.1.1"]);
    rmSync(join(dir, "pnp"));
    assert.equal(fallbackDnsServers(paths()), undefined);
    mkdirSync(join(dir, "leases"));
  });
});

describe("createServerLookup", () => {
  it("resolves through the given server, in both callback forms, and reports failures", async () => {
    const dns = await startDnsServer("127.0.0.1", 0, { "images.test": "127.0.0.1" });
    try {
      const lookup = createServerLookup([`127.0.0.1:${dns.port}`], 1000);
      const one = await new Promise<unknown[]>((resolve) => lookup("images.test", { family: 4 }, (...args: unknown[]) => resolve(args)));
      assert.deepEqual(one, [null, "127.0.0.1", 4]);
      const all = await new Promise<unknown[]>((resolve) => lookup("images.test", { all: true }, (...args: unknown[]) => resolve(args)));
      assert.deepEqual(all, [null, [{ address: "127.0.0.1", family: 4 }]]);
      const missing = await new Promise<unknown[]>((resolve) => lookup("nope.test", { all: true }, (...args: unknown[]) => resolve(args)));
      assert.match(String(missing[0]), /cannot resolve nope.test with DNS servers 127.0.0.1:\d+: ENOTFOUND/);
    } finally {
      dns.socket.close();
    }
  });

  it("lets a pull resolve host names from a networkd lease when there is no resolv.conf", async (t) => {
    // Lease files name servers without a port, so this server must listen on port 53 (we are root).
    let dns;
    try {
      dns = await startDnsServer("127.88.0.1", 53, { "images.test": "127.0.0.1" });
    } catch (error) {
      t.skip(`cannot bind 127.88.0.1:53: ${(error as Error).message}`);
      return;
    }
    writeFileSync(join(dir, "leases", "2"), "ADDRESS=10.0.2.15\nDNS=127.88.0.1\n");
    const client = createHttpClient({
      idleTimeoutMs: 2000,
      dnsPaths: { resolvConf: join(dir, "missing-resolv.conf"), leasesDir: join(dir, "leases"), procNetPnp: join(dir, "pnp") },
    });
    try {
      const response = await client.request(`http://images.test:${http.port}/file.txt`, { headers: {} });
      assert.equal((await response.body.toArray()).join(""), "resolved\n");
      assert.ok(dns.queries.includes("images.test/1"));
    } finally {
      await client.close();
      dns.socket.close();
    }
  });
});
