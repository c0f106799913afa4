// netimport pull end to end against a real HTTP server: every format, resume, failures, verification,
// mirrors, ETag reuse, and the promise that nothing exists at DEST unless the pull succeeded.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, beforeEach, describe, it } from "node:test";
import { pull, type PullOptions } from "../../../runtime/pull.ts";
import { startFixtureServer, type FixtureServer } from "../../support/http-fixture-server.ts";
import { createGpgFixture, type GpgFixture } from "./gpg-fixture.ts";

const MiB = 1024 * 1024;
/** A small disk-like image: random data, a hole, text, random again. */
function makeImage(): Buffer {
  const text = Buffer.from("[Unit]\nDescription=netimport test\n".repeat(40_000)).subarray(0, MiB);
  return Buffer.concat([randomBytes(MiB), Buffer.alloc(MiB), text, randomBytes(MiB / 2)]);
}

const IMAGE = makeImage();
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

let root: string;
let served: string;
let server: FixtureServer;
let gpg: GpgFixture;
let out: string;
const lines: string[] = [];

function options(url: string, dest: string, extra: Partial<PullOptions> = {}): PullOptions {
  return {
    url, dest, type: "raw", verify: { kind: "checksum" }, idleTimeoutSeconds: 1, retryDelaySeconds: 0.01,
    info: (line) => lines.push(line), ...extra,
  };
}

/** Nothing at DEST and no temporary left next to it. */
function assertNothingLeft(dest: string): void {
  assert.equal(existsSync(dest), false, `${dest} exists`);
  assert.deepEqual(readdirSync(out).filter((n) => n.startsWith(".#")), []);
}

before(() => {
  root = mkdtempSync(join(tmpdir(), "netimport-pull-"));
  served = join(root, "srv");
  mkdirSync(served);
  writeFileSync(join(served, "os.raw"), IMAGE);
  for (const [tool, suffix] of [["gzip", "gz"], ["zstd", "zst"], ["xz", "xz"], ["bzip2", "bz2"]] as const) {
    writeFileSync(join(served, `os.raw.${suffix}`), execFileSync(tool, ["-c", "-q", join(served, "os.raw")], { maxBuffer: 64 * MiB }));
  }
  const tree = join(root, "tree");
  mkdirSync(join(tree, "etc"), { recursive: true });
  mkdirSync(join(tree, "usr/lib"), { recursive: true });
  writeFileSync(join(tree, "etc/os-release"), "ID=test\n");
  writeFileSync(join(tree, "usr/lib/blob"), IMAGE.subarray(0, MiB));
  execFileSync("tar", ["-C", tree, "-czf", join(served, "root.tar.gz"), "."]);
  const sums = readdirSync(served).map((name) => `${sha256(readFileSync(join(served, name)))}  ${name}\n`).join("");
  writeFileSync(join(served, "SHA256SUMS"), sums);
  gpg = createGpgFixture();
  gpg.sign(join(served, "SHA256SUMS"), join(served, "SHA256SUMS.gpg"));
});

beforeEach(async () => {
  server = await startFixtureServer({ root: served });
  out = mkdtempSync(join(root, "out-"));
  lines.length = 0;
});

after(() => {
  gpg.cleanup();
  rmSync(root, { recursive: true, force: true });
});

async function withServer<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } finally {
    await server.close();
  }
}

describe("pull: formats", () => {
  for (const decoders of ["auto", "js"] as const) {
    for (const name of ["os.raw", "os.raw.gz", "os.raw.zst", "os.raw.xz", "os.raw.bz2"]) {
      it(`${name} → a byte-identical, sparse raw file, checksum verified (${decoders} decoders)`, () => withServer(async () => {
        const dest = join(out, "os.raw");
        const result = await pull(options(`${server.url}/${name}`, dest, { decoders }));
        assert.equal(result.status, "pulled");
        assert.ok(readFileSync(dest).equals(IMAGE));
        // The image's zero MiB is a hole, whichever decoder wrote it.
        assert.ok(statSync(dest).blocks * 512 <= IMAGE.length - MiB + 64 * 1024, `allocated ${statSync(dest).blocks * 512}`);
        assert.deepEqual(readdirSync(out).filter((n) => n.startsWith(".#")), []);
      }));
    }
  }

  it("root.tar.gz → a folder tree", () => withServer(async () => {
    const dest = join(out, "root");
    await pull(options(`${server.url}/root.tar.gz`, dest, { type: "tar", verify: { kind: "signature" }, keyring: gpg.keyring, readOnly: true }));
    assert.equal(readFileSync(join(dest, "etc/os-release"), "utf8"), "ID=test\n");
    assert.ok(readFileSync(join(dest, "usr/lib/blob")).equals(IMAGE.subarray(0, MiB)));
    assert.equal(statSync(dest).mode & 0o222, 0, "--ro makes the tree's root read-only");
  }));

  it("file:// URLs work too", () => withServer(async () => {
    const dest = join(out, "os.raw");
    const result = await pull(options(pathToFileURL(join(served, "os.raw.zst")).href, dest));
    assert.equal(result.status, "pulled");
    assert.ok(readFileSync(dest).equals(IMAGE));
  }));
});

describe("pull: network failures", () => {
  it("resumes after the server cuts the connection at several offsets", () => withServer(async () => {
    const size = statSync(join(served, "os.raw.xz")).size;
    const cuts = [1, 4096, Math.floor(size / 3), size - 10];
    server.behave("/os.raw.xz", { cutAt: cuts });
    const dest = join(out, "os.raw");
    await pull(options(`${server.url}/os.raw.xz`, dest, { verify: { kind: "signature" }, keyring: gpg.keyring }));
    assert.ok(readFileSync(dest).equals(IMAGE));
    const ranges = server.log.filter((e) => e.path === "/os.raw.xz").map((e) => e.range);
    assert.deepEqual(ranges, [undefined, ...cuts.map((c) => `bytes=${c}-`)]);
  }));

  it("fails on 404 with the URL and status, leaving nothing behind", () => withServer(async () => {
    const dest = join(out, "os.raw");
    await assert.rejects(pull(options(`${server.url}/missing.raw`, dest, { verify: { kind: "no" } })),
      { message: `HTTP 404 Not Found from ${server.url}/missing.raw` });
    assertNothingLeft(dest);
  }));

  it("retries 500 and then succeeds", () => withServer(async () => {
    server.behave("/os.raw.gz", { status: 500, statusTimes: 2 });
    const dest = join(out, "os.raw");
    await pull(options(`${server.url}/os.raw.gz`, dest));
    assert.ok(readFileSync(dest).equals(IMAGE));
    assert.deepEqual(server.log.filter((e) => e.path === "/os.raw.gz").map((e) => e.status), [500, 500, 200]);
    assert.ok(lines.some((l) => /HTTP 500 Internal Server Error from .*; retrying .* in \d/.test(l)));
  }));

  it("fails when the server announces more bytes than it sends", () => withServer(async () => {
    server.behave("/os.raw", { extraContentLength: 1000 });
    const dest = join(out, "os.raw");
    await assert.rejects(pull(options(`${server.url}/os.raw`, dest, { verify: { kind: "no" }, retries: 1, idleTimeoutSeconds: 0.3 })), /416 Range Not Satisfiable/);
    assertNothingLeft(dest);
  }));

  it("fails on a redirect loop", () => withServer(async () => {
    server.behave("/a.raw", { redirectTo: "/b.raw" });
    server.behave("/b.raw", { redirectTo: "/a.raw" });
    const dest = join(out, "os.raw");
    await assert.rejects(pull(options(`${server.url}/a.raw`, dest, { verify: { kind: "no" } })), /redirect loop/);
    assertNothingLeft(dest);
  }));

  it("times out a stalled transfer after the idle timeout and resumes", () => withServer(async () => {
    server.behave("/os.raw.zst", { stallAt: 100_000 });
    const dest = join(out, "os.raw");
    const started = Date.now();
    await pull(options(`${server.url}/os.raw.zst`, dest));
    assert.ok(Date.now() - started >= 950);
    assert.ok(readFileSync(dest).equals(IMAGE));
    assert.ok(lines.some((l) => l.startsWith("no data for 1 s from ")));
  }));

  it("gives up on a server that never answers, after its retries", () => withServer(async () => {
    server.behave("/os.raw", { delayMs: 5000 });
    const dest = join(out, "os.raw");
    await assert.rejects(pull(options(`${server.url}/os.raw`, dest, { verify: { kind: "no" }, retries: 0 })), /Headers Timeout.* from http:\/\/127\.0\.0\.1:\d+\/os\.raw/);
    assertNothingLeft(dest);
  }));

  it("tries mirrors in order: first mirror 404, second works", () => withServer(async () => {
    const mirror = await startFixtureServer({ root: served });
    try {
      mirror.behave("/first/os.raw.zst", { status: 404 });
      mirror.behave("/first/SHA256SUMS", { status: 404 });
      mirror.behave("/second/os.raw.zst", { redirectTo: "/os.raw.zst" });
      mirror.behave("/second/SHA256SUMS", { redirectTo: "/SHA256SUMS" });
      const dest = join(out, "os.raw");
      await pull(options(`${server.url}/gone/os.raw.zst`, dest, { mirrors: [`${mirror.url}/first`, `${mirror.url}/second/`] }));
      assert.ok(readFileSync(dest).equals(IMAGE));
      assert.deepEqual(mirror.log.map((e) => `${e.path} ${e.status}`), [
        "/first/os.raw.zst.sha256 404", "/second/os.raw.zst.sha256 404",
        "/first/SHA256SUMS 404", "/second/SHA256SUMS 302", "/SHA256SUMS 200",
        "/first/os.raw.zst 404", "/second/os.raw.zst 302", "/os.raw.zst 200",
      ]);
    } finally {
      await mirror.close();
    }
  }));
});

describe("pull: verification", () => {
  it("fails on a hash mismatch and leaves nothing behind", () => withServer(async () => {
    const dest = join(out, "os.raw");
    await assert.rejects(pull(options(`${server.url}/os.raw.gz`, dest, { verify: { kind: "pinned", hash: "0".repeat(64) } })),
      /^Error: checksum mismatch for .*os.raw.gz: got sha256 [0-9a-f]{64}, --verify=sha256: says 0{64}$/);
    assertNothingLeft(dest);
  }));

  it("accepts a pinned hash of the file as served", () => withServer(async () => {
    const dest = join(out, "os.raw");
    const hash = sha256(readFileSync(join(served, "os.raw.gz")));
    await pull(options(`${server.url}/os.raw.gz`, dest, { verify: { kind: "pinned", hash } }));
    assert.ok(readFileSync(dest).equals(IMAGE));
  }));

  it("fails on a bad signature before fetching the image", () => withServer(async () => {
    server.behave("/SHA256SUMS.gpg", { redirectTo: "/bad.gpg" });
    writeFileSync(join(served, "other.txt"), "something else\n");
    gpg.sign(join(served, "other.txt"), join(served, "bad.gpg"));
    const dest = join(out, "os.raw");
    await assert.rejects(pull(options(`${server.url}/os.raw.zst`, dest, { verify: { kind: "signature" }, keyring: gpg.keyring })), /^Error: bad signature /);
    assert.equal(server.log.some((e) => e.path === "/os.raw.zst"), false);
    assertNothingLeft(dest);
  }));

  it("fails on a signature by an unknown key", () => withServer(async () => {
    server.behave("/SHA256SUMS.gpg", { redirectTo: "/unknown.gpg" });
    gpg.signWithUnknownKey(join(served, "SHA256SUMS"), join(served, "unknown.gpg"));
    const dest = join(out, "os.raw");
    await assert.rejects(pull(options(`${server.url}/os.raw.zst`, dest, { verify: { kind: "signature" }, keyring: gpg.keyring })), /which is not in keyring/);
    assertNothingLeft(dest);
  }));

  it("fails when the image's checksum in SHA256SUMS does not match", () => withServer(async () => {
    server.behave("/os.raw.zst", { redirectTo: "/os.raw.gz" }); // served bytes differ from the listed hash
    const dest = join(out, "os.raw");
    await assert.rejects(pull(options(`${server.url}/os.raw.zst`, dest)), /checksum mismatch for .*\/SHA256SUMS says/);
    assertNothingLeft(dest);
  }));
});

describe("pull: an existing destination", () => {
  it("is kept on 304 (ETag), and replaced atomically when the image changed", () => withServer(async () => {
    const dest = join(out, "os.raw");
    await pull(options(`${server.url}/os.raw.zst`, dest));
    const etag = readFileSync(join(out, ".os.raw.netimport-etag"), "utf8").trim();
    assert.match(etag, /^".+"$/);
    server.log.length = 0;
    const again = await pull(options(`${server.url}/os.raw.zst`, dest));
    assert.equal(again.status, "up-to-date");
    const image = server.log.filter((e) => e.path === "/os.raw.zst");
    assert.deepEqual(image.map((e) => [e.ifNoneMatch, e.status]), [[etag, 304]]);
    // A new upload: new mtime, new ETag. The old file is replaced, the sidecar updated.
    writeFileSync(join(out, "marker"), "");
    utimesSync(join(served, "os.raw.zst"), new Date(), new Date(Date.now() + 5000));
    const inode = statSync(dest).ino;
    const third = await pull(options(`${server.url}/os.raw.zst`, dest));
    assert.equal(third.status, "pulled");
    assert.notEqual(statSync(dest).ino, inode);
    assert.notEqual(readFileSync(join(out, ".os.raw.netimport-etag"), "utf8").trim(), etag);
    assert.ok(readFileSync(dest).equals(IMAGE));
  }));

  it("is left untouched when a new pull fails", () => withServer(async () => {
    const dest = join(out, "os.raw");
    writeFileSync(dest, "old image");
    await assert.rejects(pull(options(`${server.url}/os.raw.gz`, dest, { verify: { kind: "pinned", hash: "1".repeat(64) } })));
    assert.equal(readFileSync(dest, "utf8"), "old image");
    assert.deepEqual(readdirSync(out).filter((n) => n.startsWith(".#")), []);
  }));
});

describe("pull: space", () => {
  it("checks the room for the image before writing (size from Content-Length, or the zstd header)", (t) => withServer(async () => {
    const small = join(out, "small");
    mkdirSync(small);
    if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", small]).status !== 0) {
      t.skip("cannot mount a tmpfs here");
      return;
    }
    try {
      const dest = join(small, "os.raw");
      await assert.rejects(pull(options(`${server.url}/os.raw`, dest, { verify: { kind: "no" } })),
        /^Error: image needs 3\.5 MiB, only 1\.0 MiB is free on /);
      assert.deepEqual(readdirSync(small), []);
      // Compressed: the size the zstd frame header announces, read before anything is written.
      await assert.rejects(pull(options(`${server.url}/os.raw.zst`, dest, { verify: { kind: "no" } })),
        /^Error: image needs 3\.5 MiB, only 1\.0 MiB is free on /);
      assert.deepEqual(readdirSync(small), []);
    } finally {
      execFileSync("umount", [small]);
    }
  }));
});
