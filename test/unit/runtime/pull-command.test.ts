// The `netimport pull` command line: argument parsing, and the real process's exit codes, stderr
// lines and signal handling.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { parsePullArguments } from "../../../runtime/pull-command.ts";
import { getXattr } from "../../../runtime/xattrs.ts";
import { startFixtureServer, type FixtureServer } from "../../support/http-fixture-server.ts";
import { createGpgFixture } from "./gpg-fixture.ts";

const MAIN = resolve(import.meta.dirname, "../../../runtime/main.ts");
const LOADER = resolve(import.meta.dirname, "../../support/text-loader.ts");

const BUILT = resolve(import.meta.dirname, "../../../dist/netimport");

/** Runs `netimport ARGS` from source (or the built single executable with `built`). */
function run(args: string[], onSpawn?: (child: ReturnType<typeof spawn>) => void, built = false): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = built
      ? spawn(BUILT, args, { stdio: ["ignore", "pipe", "pipe"] })
      : spawn(process.execPath, ["--import", LOADER, MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolvePromise({ code, stdout, stderr }));
    onSpawn?.(child);
  });
}

describe("parsePullArguments", () => {
  it("parses every option and infers the type from the URL", () => {
    const options = parsePullArguments([
      "--verify=checksum", "--keyring=/k.pgp", "--mirror=http://m1/", "--mirror", "http://m2/x", "--ca-file=/ca.pem",
      "--idle-timeout=7", "--retries=3", "--retry-delay=0.5", "--proxy=http://p:3128", "--no-proxy=local,10.0.0.0/8",
      "--progress-interval=2", "--ro", "http://o/root.tar.zst", "rel/root",
    ]);
    assert.deepEqual(options, {
      keyring: "/k.pgp", caFile: "/ca.pem", idleTimeoutSeconds: 7, retries: 3, retryDelaySeconds: 0.5,
      httpProxy: "http://p:3128", httpsProxy: "http://p:3128", noProxy: "local,10.0.0.0/8", progressIntervalSeconds: 2, readOnly: true,
      url: "http://o/root.tar.zst", dest: resolve("rel/root"), type: "tar", verify: { kind: "checksum" },
      mirrors: ["http://m1/", "http://m2/x"],
    });
    const split = parsePullArguments([
      "--http-proxy=http://p1:3128", "--https-proxy=http://***@p2:3128", "--secrets-from=/etc/netimport/netimport.conf",
      "--secrets-from=/proc/cmdline", "--image-memory-max=40%", "https://***@o/os.raw", "/d",
    ]);
    assert.equal(split.httpProxy, "http://p1:3128");
    assert.equal(split.httpsProxy, "http://***@p2:3128");
    assert.deepEqual(split.secretsFrom, ["/etc/netimport/netimport.conf", "/proc/cmdline"]);
    assert.deepEqual(split.memoryLimit, { percent: 40 });
  });
  it("defaults to raw and to systemd-pull's verify=signature", () => {
    const options = parsePullArguments(["http://o/os.raw.xz", "/run/machines/os.raw"]);
    assert.equal(options.type, "raw");
    assert.deepEqual(options.verify, { kind: "signature" });
    assert.equal(parsePullArguments(["--type=tar", "http://o/os.img", "/x"]).type, "tar");
  });
  it("rejects bad usage with a message naming the culprit", () => {
    assert.throws(() => parsePullArguments(["http://o/x"]), /expected URL and DEST, got 1/);
    assert.throws(() => parsePullArguments(["--type=iso", "http://o/x", "/d"]), /invalid --type=iso/);
    assert.throws(() => parsePullArguments(["--verify=maybe", "http://o/x", "/d"]), /invalid --verify=maybe/);
    assert.throws(() => parsePullArguments(["--retries=-1", "http://o/x", "/d"]), /invalid --retries=-1/);
    assert.throws(() => parsePullArguments(["--bogus=1", "http://o/x", "/d"]), /unknown option --bogus/);
    assert.throws(() => parsePullArguments(["ftp://o/x", "/d"]), /unsupported URL ftp:\/\/o\/x/);
    assert.throws(() => parsePullArguments(["--mirror=nope", "http://o/x", "/d"]), /invalid --mirror=nope/);
    assert.throws(() => parsePullArguments(["--mirror=ftp://m/", "http://o/x", "/d"]), /invalid --mirror=ftp:\/\/m\/ \(http:\/\/ or https:\/\/\)/);
    // Values a timer cannot hold (setTimeout overflows past 2^31 ms and fires at once).
    assert.throws(() => parsePullArguments(["--retry-delay=1e12", "http://o/x", "/d"]), /invalid --retry-delay=1e12 \(at most 3600\)/);
    assert.throws(() => parsePullArguments(["--idle-timeout=1e12", "http://o/x", "/d"]), /invalid --idle-timeout=1e12 \(at most 86400\)/);
    assert.throws(() => parsePullArguments(["--retries=1e9", "http://o/x", "/d"]), /at most 1000/);
    assert.throws(() => parsePullArguments(["--image-memory-max=lots", "http://o/x", "/d"]), /invalid --image-memory-max=lots/);
    assert.throws(() => parsePullArguments(["http://o/x", "/"]), /invalid DEST \//);
  });
  it("reads options with util.parseArgs: both value forms, --, flags without values, last of --ro/--rw wins", () => {
    const usage = (args: string[], message: string): void => {
      assert.throws(() => parsePullArguments([...args, "http://o/x", "/d"]), (error: Error) => {
        assert.equal(error.name, "UsageError");
        assert.equal(error.message, message);
        return true;
      });
    };
    usage(["--type"], "invalid --type=http://o/x (expected raw or tar)"); // the next word is its value
    assert.throws(() => parsePullArguments(["http://o/x", "/d", "--type"]), /^UsageError: --type needs a value$/);
    usage(["--ro=1"], "--ro takes no value");
    usage(["--rw="], "--rw takes no value");
    usage(["--bogus"], "unknown option --bogus");
    usage(["-x"], "unknown option -x");
    usage(["--Type=raw"], "unknown option --Type");
    // A value that starts with "-" only with "=": `--keyring --ro` no longer makes "--ro" the keyring.
    usage(["--proxy", "-x"], '--proxy needs a value (to give "-x", write --proxy=-x)');
    usage(["--keyring", "--ro"], '--keyring needs a value (to give "--ro", write --keyring=--ro)');
    usage(["--proxy=-x"], "invalid --proxy=-x (not a URL)");
    assert.equal(parsePullArguments(["--keyring=-k", "http://o/x", "/d"]).keyring, "-k");
    assert.equal(parsePullArguments(["--keyring", "-", "http://o/x", "/d"]).keyring, "-");
    // Values are checked in the order given.
    usage(["--retries=-1", "--type=iso"], "invalid --retries=-1");
    usage(["--type=iso", "--retries=-1"], "invalid --type=iso (expected raw or tar)");
    assert.equal(parsePullArguments(["--ro", "--rw", "http://o/x", "/d"]).readOnly, false);
    assert.equal(parsePullArguments(["--rw", "--ro", "http://o/x", "/d"]).readOnly, true);
    assert.deepEqual(parsePullArguments(["--type", "tar", "--", "http://o/x", "-d"]).dest, resolve("-d"));
    assert.throws(() => parsePullArguments(["--", "http://o/x", "/d", "--ro"]), /expected URL and DEST, got 3/);
    assert.equal(parsePullArguments(["--proxy=http://p/", "--proxy=", "http://o/x", "/d"]).httpProxy, undefined);
  });
});

describe("netimport pull (process)", () => {
  let dir: string;
  let out: string;
  let server: FixtureServer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "netimport-cli-"));
    mkdirSync(join(dir, "srv"));
    out = join(dir, "out");
    mkdirSync(out);
    writeFileSync(join(dir, "srv", "os.raw"), randomBytes(4 << 20));
    server = await startFixtureServer({ root: join(dir, "srv") });
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("exits 0 and says so when DEST holds the image", async () => {
    const dest = join(out, "ok.raw");
    const result = await run(["pull", "--verify=no", `${server.url}/os.raw`, dest]);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(readFileSync(dest).equals(readFileSync(join(dir, "srv", "os.raw"))));
    assert.match(result.stdout, /100% 4\.0 MiB of 4\.0 MiB/);
    assert.match(result.stdout, new RegExp(`pulled ${server.url}/os.raw into ${dest}`));
    const again = await run(["pull", "--verify=no", `${server.url}/os.raw`, dest]);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /is already up to date/);
  });

  it("takes credentials from --secrets-from, and shows them nowhere", async () => {
    const secrets = join(dir, "secret.conf");
    writeFileSync(secrets, `[Import]\nPull=raw::${server.url.replace("//", "//netimport:t0p s3cret@").replace(" ", "%20")}/private/os.raw\n`, { mode: 0o600 });
    server.behave("/private/os.raw", { basicAuth: "netimport:t0p s3cret", redirectTo: "/os.raw" });
    const redacted = `${server.url.replace("//", "//***@")}/private/os.raw`;
    const dest = join(out, "private.raw");
    const result = await run(["pull", "--verify=no", `--secrets-from=${secrets}`, redacted, dest]);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(readFileSync(dest).equals(readFileSync(join(dir, "srv", "os.raw"))));
    assert.ok(!`${result.stdout}${result.stderr}`.includes("s3cret") && !`${result.stdout}${result.stderr}`.includes("t0p"), result.stdout);
    assert.match(result.stdout, /pulled http:\/\/\*\*\*@127\.0\.0\.1:\d+\/private\/os\.raw into/);
    const record = `${await getXattr(dest, "user.netimport")}${await getXattr(dest, "user.source_url")}`;
    assert.match(record, /\*\*\*@/);
    assert.ok(!record.includes("s3cret"), "nor in the record the image carries");
    // Without the file, the placeholder is not a password.
    const missing = await run(["pull", "--verify=no", redacted, join(out, "nope.raw")]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^netimport: http:\/\/\*\*\*@.* stands for a URL with credentials, but no --secrets-from=FILE says where it is\n$/);
    server.behave("/private/os.raw", undefined);
  });

  it("exits 2 on usage errors", async () => {
    const result = await run(["pull", "--verify=maybe", `${server.url}/os.raw`, join(out, "x")]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^netimport: pull: invalid --verify=maybe/);
    const missing = await run(["pull", `${server.url}/os.raw`, join(out, "x"), "--retries"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^netimport: pull: --retries needs a value\nUsage: netimport pull /);
  });

  it("exits 1 with exactly one stderr line naming the URL and status", async () => {
    const dest = join(out, "missing.raw");
    const result = await run(["pull", "--verify=no", "--retries=0", `${server.url}/missing.raw`, dest]);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, `netimport: HTTP 404 Not Found from ${server.url}/missing.raw\n`);
    assert.equal(existsSync(dest), false);
  });

  it("on SIGTERM removes the temporary and exits 1 with one line", async () => {
    server.behave("/os.raw", { stallAt: 2 << 20 });
    const dest = join(out, "stopped.raw");
    const result = await run(["pull", "--verify=no", `${server.url}/os.raw`, dest], (child) => {
      const poll = setInterval(() => {
        if (readdirSync(out).some((n) => n.startsWith(".#stopped.raw."))) {
          clearInterval(poll);
          setTimeout(() => child.kill("SIGTERM"), 100);
        }
      }, 20);
    });
    server.behave("/os.raw", undefined);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, `netimport: stopped by SIGTERM before the image was complete; ${dest} left as it was\n`);
    assert.equal(existsSync(dest), false);
    assert.deepEqual(readdirSync(out).filter((n) => n.startsWith(".#")), []);
  });

  it("the built executable verifies OpenPGP signatures and unpacks xz", { skip: !existsSync(BUILT) && "run npm run build first" }, async () => {
    const gpg = createGpgFixture();
    try {
      const srv = join(dir, "srv");
      writeFileSync(join(srv, "sig.raw.xz"), execFileSync("xz", ["-c", join(srv, "os.raw")], { maxBuffer: 64 << 20 }));
      const hash = createHash("sha256").update(readFileSync(join(srv, "sig.raw.xz"))).digest("hex");
      writeFileSync(join(srv, "sig.raw.xz.sha256"), `${hash}  sig.raw.xz\n`);
      gpg.sign(join(srv, "sig.raw.xz.sha256"), join(srv, "sig.raw.xz.sha256.asc"), true);
      const dest = join(out, "signed.raw");
      const good = await run(["pull", "--verify=signature", `--keyring=${gpg.keyring}`, `${server.url}/sig.raw.xz`, dest], undefined, true);
      assert.equal(good.code, 0, good.stderr);
      assert.ok(readFileSync(dest).equals(readFileSync(join(srv, "os.raw"))));
      gpg.signWithUnknownKey(join(srv, "sig.raw.xz.sha256"), join(srv, "sig.raw.xz.sha256.asc"));
      const bad = await run(["pull", "--verify=signature", `--keyring=${gpg.keyring}`, `${server.url}/sig.raw.xz`, join(out, "bad.raw")], undefined, true);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^netimport: signature .*sig\.raw\.xz\.sha256\.asc is made by key [0-9A-F]{16}, which is not in keyring .*\n$/);
    } finally {
      gpg.cleanup();
    }
  });
});
