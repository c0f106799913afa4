// `netimport lazy`: its command line, and the starter/server handshake of the real process: a server that
// cannot serve tells the starter why, the starter prints that one line and exits 1, and nothing the
// server made is left behind.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { UsageError } from "../../../runtime/command-line.ts";
import { parseLazyArguments } from "../../../runtime/lazy-command.ts";
import { startFixtureServer, type FixtureServer } from "../../support/http-fixture-server.ts";

const MAIN = resolve(import.meta.dirname, "../../../runtime/main.ts");
const LOADER = resolve(import.meta.dirname, "../../support/text-loader.ts");

const REQUIRED = ["--device-link=/run/netimport/lazy/os.nbd", "--pid-file=/run/netimport/lazy/os.pid"];

describe("parseLazyArguments", () => {
  it("takes the pull's options and its own", () => {
    const options = parseLazyArguments(["--type=raw", "--verify=no", "--mirror=http://m/", "--outage-limit=120", ...REQUIRED, "http://o/os.raw", "/run/machines/os.raw"]);
    assert.equal(options.deviceLink, "/run/netimport/lazy/os.nbd");
    assert.equal(options.pidFile, "/run/netimport/lazy/os.pid");
    assert.equal(options.outageLimitMs, 120_000);
    assert.equal(options.pull.url, "http://o/os.raw");
    assert.equal(options.pull.dest, "/run/machines/os.raw");
    assert.deepEqual(options.pull.verify, { kind: "no" });
    assert.deepEqual(options.pull.mirrors, ["http://m/"]);
  });

  it("waits 300 s for a server that does not answer unless told otherwise", () => {
    assert.equal(parseLazyArguments([...REQUIRED, "https://o/os.raw", "/run/machines/os.raw"]).outageLimitMs, 300_000);
  });

  for (const [args, reason] of [
    [["--pid-file=/p", "http://o/os.raw", "/d"], /--device-link/],
    [["--device-link=relative", "--pid-file=/p", "http://o/os.raw", "/d"], /--device-link/],
    [["--device-link=/l", "http://o/os.raw", "/d"], /--pid-file/],
    [[...REQUIRED, "--outage-limit=soon", "http://o/os.raw", "/d"], /--outage-limit=soon/],
    [[...REQUIRED, "--outage-limit=-1", "http://o/os.raw", "/d"], /--outage-limit=-1/],
    [[...REQUIRED, "--type=tar", "http://o/os.tar", "/d"], /raw images only/],
    [[...REQUIRED, "file:///srv/os.raw", "/d"], /Range requests/],
    [[...REQUIRED, "--bogus", "http://o/os.raw", "/d"], /bogus/],
    [[...REQUIRED, "http://o/os.raw"], /URL and DEST/],
  ] as const) {
    it(`refuses ${args.join(" ")}`, () => {
      assert.throws(() => parseLazyArguments(args), (error: unknown) => error instanceof UsageError && reason.test(error.message));
    });
  }
});

describe("netimport lazy (the process)", () => {
  let server: Server;
  let rangeServer: FixtureServer | undefined;
  let base: string;
  let work: string;
  const image = randomBytes(64 * 1024);
  before(async () => {
    work = mkdtempSync(join(tmpdir(), "netimport-lazy-"));
    // A server that ignores Range: lazy cannot read blocks from it.
    server = createServer((_request, response) => response.writeHead(200, { "content-length": image.length }).end(image));
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await rangeServer?.close();
    await new Promise((done) => server.close(done));
    rmSync(work, { recursive: true, force: true });
  });

  function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((done) => {
      const child = spawn(process.execPath, ["--import", LOADER, MAIN, "lazy", ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      child.on("close", (code) => done({ code, stdout, stderr }));
    });
  }

  it("prints the server's one-line reason and exits 1 when it cannot serve, leaving nothing behind", async () => {
    const dest = join(work, "machines", "os.raw");
    const result = await run(["--verify=no", `--device-link=${join(work, "os.nbd")}`, `--pid-file=${join(work, "os.pid")}`, `${base}/os.raw`, dest]);
    assert.equal(result.code, 1, result.stderr);
    const lines = result.stderr.trim().split("\n");
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0]!, /^netimport: lazy: .*does not support HTTP Range requests/);
    assert.deepEqual(readdirSync(work).filter((name) => name !== "machines"), []);
  });

  it("undoes everything it made when the device cannot be connected: copy, loop device, tool kit, socket", { skip: process.getuid?.() === 0 ? false : "needs root" }, async () => {
    // Range works; then this host, which has no nbd driver (and no modprobe), cannot connect the device.
    rangeServer = await startFixtureServer({ root: work });
    writeFileSync(join(work, "os.raw"), image);
    const kit = join(work, "kit");
    const dest = join(work, "machines", "lazy.raw");
    const loopsBefore = execFileSync("losetup", ["--list", "--noheadings", "--output", "BACK-FILE"], { encoding: "utf8" });
    const result = await run(["--verify=no", `--device-link=${join(work, "lazy.nbd")}`, `--pid-file=${join(work, "lazy.pid")}`, `${rangeServer.url}/os.raw`, dest],
      { NETIMPORT_LAZY_KIT_DIR: kit, PATH: "/usr/sbin:/usr/bin:/sbin:/bin" });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /^netimport: lazy: the kernel.s nbd module is not available/);
    assert.deepEqual(readdirSync(join(work, "machines")), [], "the copy's temporary was not removed");
    assert.ok(!existsSync(kit), "the tool kit was not removed");
    assert.ok(!readFileSync("/proc/self/mountinfo", "utf8").includes(kit), "the tool kit is still mounted");
    assert.equal(execFileSync("losetup", ["--list", "--noheadings", "--output", "BACK-FILE"], { encoding: "utf8" }), loopsBefore, "a loop device was left");
    assert.ok(!existsSync(join(work, "lazy.nbd.sock")) && !existsSync(join(work, "lazy.nbd")) && !existsSync(join(work, "lazy.pid")));
  });

  it("exits 2 with the usage on a bad command line", async () => {
    const result = await run(["http://o/os.raw", "/d"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^netimport: lazy: --device-link=PATH \(absolute\) is required\nUsage: netimport lazy/);
  });
});
