// netimport pull end to end against a real HTTP server: every format, resume, failures, verification,
// mirrors, ETag reuse, and the promise that nothing exists at DEST unless the pull succeeded.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, beforeEach, describe, it } from "node:test";
import { recordPath } from "../../../runtime/image-record.ts";
import { getXattr } from "../../../runtime/xattrs.ts";
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
    await assert.rejects(pull(options(`${server.url}/os.raw`, dest, { verify: { kind: "no" }, retries: 0 })), /no response headers within 1 s from http:\/\/127\.0\.0\.1:\d+\/os\.raw/);
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

/** The record netimport keeps on the image at DEST (its user.netimport xattr). */
const recordOfDest = async (dest: string) => JSON.parse((await getXattr(dest, "user.netimport")) ?? "null");

describe("pull: an existing destination", () => {
  it("is kept on 304 (ETag), and replaced atomically when the image changed", () => withServer(async () => {
    const dest = join(out, "os.raw");
    await pull(options(`${server.url}/os.raw.zst`, dest));
    const record = await recordOfDest(dest);
    assert.match(record.etag, /^".+"$/);
    assert.equal(record.url, `${server.url}/os.raw.zst`);
    assert.equal(record.sha256, sha256(readFileSync(join(served, "os.raw.zst"))));
    // As systemd-pull leaves it: the source's URL and ETag as xattrs, the mtime from Last-Modified.
    assert.equal(await getXattr(dest, "user.source_url"), `${server.url}/os.raw.zst`);
    assert.equal(await getXattr(dest, "user.source_etag"), record.etag);
    assert.equal(statSync(dest).mtime.toUTCString(), statSync(join(served, "os.raw.zst")).mtime.toUTCString(), "mtime from Last-Modified");
    assert.deepEqual(readdirSync(out), ["os.raw"], "nothing else beside the image");
    server.log.length = 0;
    const again = await pull(options(`${server.url}/os.raw.zst`, dest));
    assert.equal(again.status, "up-to-date");
    const image = server.log.filter((e) => e.path === "/os.raw.zst");
    assert.deepEqual(image.map((e) => [e.ifNoneMatch, e.status]), [[record.etag, 304]]);
    // A new upload: new mtime, new ETag. The old file is replaced, the record updated.
    utimesSync(join(served, "os.raw.zst"), new Date(), new Date(Date.now() + 5000));
    const inode = statSync(dest).ino;
    const third = await pull(options(`${server.url}/os.raw.zst`, dest));
    assert.equal(third.status, "pulled");
    assert.notEqual(statSync(dest).ino, inode);
    assert.notEqual((await recordOfDest(dest)).etag, record.etag);
    assert.ok(readFileSync(dest).equals(IMAGE));
  }));

  it("keeps its record in a hidden sidecar where the file system refuses user xattrs (ramfs)", (t) => withServer(async () => {
    const ramfs = join(out, "ramfs");
    mkdirSync(ramfs);
    if (spawnSync("mount", ["-t", "ramfs", "test-ramfs", ramfs]).status !== 0) return t.skip("cannot mount a ramfs here");
    try {
      // Not empty, and a mount point of its own: no tmpfs goes over it, the image lands on the ramfs.
      writeFileSync(join(ramfs, ".keep"), "");
      const innerDest = join(ramfs, "os.raw");
      await pull(options(`${server.url}/os.raw`, innerDest, { verify: { kind: "no" } }));
      assert.deepEqual(readdirSync(ramfs).sort(), [".keep", ".os.raw.netimport", "os.raw"]);
      const sidecar = JSON.parse(readFileSync(recordPath(innerDest), "utf8"));
      assert.equal(sidecar.images.length, 1);
      assert.equal(sidecar.images[0].url, `${server.url}/os.raw`);
      server.log.length = 0;
      assert.equal((await pull(options(`${server.url}/os.raw`, innerDest, { verify: { kind: "no" } }))).status, "up-to-date");
    } finally {
      spawnSync("umount", ["-R", ramfs]);
    }
  }));

  it("is left untouched when a new pull fails", () => withServer(async () => {
    const dest = join(out, "os.raw");
    await pull(options(`${server.url}/os.raw.zst`, dest));
    await assert.rejects(pull(options(`${server.url}/os.raw.gz`, dest, { verify: { kind: "pinned", hash: "1".repeat(64) } })));
    assert.ok(readFileSync(dest).equals(IMAGE));
    assert.deepEqual(readdirSync(out).filter((n) => n.startsWith(".#")), []);
  }));
});

describe("pull: a 304 never skips verification", () => {
  it("a pinned hash that no longer matches: no If-None-Match, the new download is checked and refused", () => withServer(async () => {
    const dest = join(out, "os.raw");
    await pull(options(`${server.url}/os.raw.zst`, dest));
    server.log.length = 0;
    await assert.rejects(pull(options(`${server.url}/os.raw.zst`, dest, { verify: { kind: "pinned", hash: "2".repeat(64) } })), /checksum mismatch/);
    assert.deepEqual(server.log.filter((e) => e.path === "/os.raw.zst").map((e) => [e.ifNoneMatch, e.status]), [[undefined, 200]]);
    assert.ok(lines.some((l) => /cannot be kept, as its SHA-256 is not the one --verify=sha256: expects now/.test(l)));
    assert.ok(readFileSync(dest).equals(IMAGE), "DEST as it was");
  }));

  it("a new SHA256SUMS that lists another hash: the image is downloaded and verified again", () => withServer(async () => {
    const dest = join(out, "os.raw");
    await pull(options(`${server.url}/os.raw.zst`, dest));
    writeFileSync(join(served, "SHA256SUMS.new"), `${"3".repeat(64)}  os.raw.zst\n`);
    server.behave("/SHA256SUMS", { redirectTo: "/SHA256SUMS.new" });
    server.log.length = 0;
    await assert.rejects(pull(options(`${server.url}/os.raw.zst`, dest)), /checksum mismatch for .*os\.raw\.zst: got sha256 [0-9a-f]{64}, .*SHA256SUMS says 3{64}/);
    assert.equal(server.log.find((e) => e.path === "/os.raw.zst")?.ifNoneMatch, undefined);
  }));

  it("an image modified at DEST since the pull is downloaded again in full", () => withServer(async () => {
    const dest = join(out, "os.raw");
    await pull(options(`${server.url}/os.raw.zst`, dest));
    writeFileSync(dest, "tampered", { flag: "r+" });
    server.log.length = 0;
    const result = await pull(options(`${server.url}/os.raw.zst`, dest));
    assert.equal(result.status, "pulled");
    assert.equal(server.log.find((e) => e.path === "/os.raw.zst")?.ifNoneMatch, undefined);
    assert.ok(readFileSync(dest).equals(IMAGE));
  }));

  it("another URL into the same DEST never reuses it, even when the ETags collide", () => withServer(async () => {
    server.behave("*", { etag: '"same"' });
    const dest = join(out, "os.raw");
    await pull(options(`${server.url}/os.raw.zst`, dest, { verify: { kind: "no" } }));
    server.log.length = 0;
    const other = await pull(options(`${server.url}/os.raw.gz`, dest, { verify: { kind: "no" } }));
    assert.equal(other.status, "pulled");
    assert.equal(server.log.find((e) => e.path === "/os.raw.gz")?.ifNoneMatch, undefined);
    assert.equal((await recordOfDest(dest)).url, `${server.url}/os.raw.gz`);
  }));
});

describe("pull: what is not netimport's is never touched", () => {
  it("refuses a folder at DEST (`netimport pull URL .`), deleting nothing", () => withServer(async () => {
    const project = join(out, "project");
    mkdirSync(project);
    writeFileSync(join(project, "precious.txt"), "data");
    for (const type of ["raw", "tar"] as const) {
      await assert.rejects(pull(options(`${server.url}/os.raw`, project, { type, verify: { kind: "no" } })),
        /project (exists and is not a regular file|exists and was not made by netimport .*): netimport only replaces images it pulled itself/);
    }
    assert.deepEqual(readdirSync(project), ["precious.txt"]);
    assert.equal(server.log.length, 0, "refused before any request");
  }));

  it("refuses a symlink at DEST and never changes its target", () => withServer(async () => {
    const target = join(out, "target");
    mkdirSync(target, { mode: 0o755 });
    const link = join(out, "link");
    symlinkSync(target, link);
    await assert.rejects(pull(options(`${server.url}/os.raw`, link, { verify: { kind: "no" }, readOnly: true })), /link is a symbolic link/);
    assert.equal(statSync(target).mode & 0o777, 0o755);
    assert.ok(lstatSync(link).isSymbolicLink());
  }));

  it("refuses a file at DEST that netimport did not pull", () => withServer(async () => {
    const dest = join(out, "os.raw");
    writeFileSync(dest, "someone's disk image");
    await assert.rejects(pull(options(`${server.url}/os.raw`, dest, { verify: { kind: "no" } })), /os\.raw exists and was not made by netimport/);
    assert.equal(readFileSync(dest, "utf8"), "someone's disk image");
  }));
});

describe("pull: interrupted and concurrent runs", () => {
  it("removes the temporaries a killed pull left behind", () => withServer(async () => {
    const dest = join(out, "os.raw");
    writeFileSync(join(out, ".#os.raw.deadbeef"), "half an image");
    mkdirSync(join(out, ".#os.raw.cafe0123.old"));
    writeFileSync(join(out, ".#os.raw.unrelated"), "not ours");
    await pull(options(`${server.url}/os.raw`, dest, { verify: { kind: "no" } }));
    assert.deepEqual(readdirSync(out).sort(), [".#os.raw.unrelated", "os.raw"]);
    assert.ok(lines.some((l) => l === `removing ${out}/.#os.raw.deadbeef, left behind by an interrupted pull`));
  }));

  it("keeps two pulls of one DEST apart", () => withServer(async () => {
    server.behave("/os.raw", { delayMs: 300 });
    const dest = join(out, "os.raw");
    const first = pull(options(`${server.url}/os.raw`, dest, { verify: { kind: "no" } }));
    await new Promise((done) => setTimeout(done, 100));
    await assert.rejects(pull(options(`${server.url}/os.raw.gz`, dest, { verify: { kind: "no" } })),
      new RegExp(`^LockedError: another netimport pull \\(pid ${process.pid}\\) is writing ${dest}$`));
    assert.equal((await first).status, "pulled");
    assert.ok(readFileSync(dest).equals(IMAGE));
  }));
});

describe("pull: resume never mixes two files", () => {
  it("a 206 of a replaced file (a server that ignores If-Range) starts the transfer again: the result is one file", () => withServer(async () => {
    writeFileSync(join(served, "v2.raw"), Buffer.from(IMAGE).reverse());
    utimesSync(join(served, "v2.raw"), new Date(), new Date(Date.now() + 60_000));
    server.behave("/os.raw", { cutAt: [MiB], ignoreIfRange: true, replacedBy: { path: "/v2.raw", afterRequests: 1 } });
    const dest = join(out, "os.raw");
    await pull(options(`${server.url}/os.raw`, dest, { verify: { kind: "no" } }));
    assert.ok(readFileSync(dest).equals(Buffer.from(IMAGE).reverse()), "all of the new file, nothing of the old");
    assert.deepEqual(server.log.filter((e) => e.path === "/os.raw").map((e) => [e.status, e.range]), [[200, undefined], [206, `bytes=${MiB}-`], [200, undefined]]);
    assert.ok(lines.some((l) => /with ETag .*: the file changed; starting again from byte 0 \(1 of 5\)$/.test(l)));
  }));

  it("a server without validators, or without Range, starts again from zero after a cut", () => withServer(async () => {
    const cases = [
      // No ETag, no Last-Modified: no resume request at all.
      { behaviour: { etag: null, noLastModified: true }, requests: [[200, undefined], [200, undefined]] },
      // Range ignored: the resume request gets the whole file, which is dropped.
      { behaviour: { ignoreRange: true }, requests: [[200, undefined], [200, "bytes=100000-"], [200, undefined]] },
    ];
    for (const { behaviour, requests } of cases) {
      server.log.length = 0;
      server.behave("/os.raw.gz", { ...behaviour, cutAt: [100_000] });
      const dest = join(out, `os-${Object.keys(behaviour)[0]}.raw`);
      await pull(options(`${server.url}/os.raw.gz`, dest));
      assert.ok(readFileSync(dest).equals(IMAGE));
      assert.deepEqual(server.log.filter((e) => e.path === "/os.raw.gz").map((e) => [e.status, e.range]), requests);
    }
  }));
});

describe("pull: memory has a ceiling", () => {
  it("a decompression bomb fills no more than the memory limit, fails, and its tmpfs is unmounted", (t) => withServer(async () => {
    const run = join(out, "run");
    mkdirSync(run);
    if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=4m", "test-run", run]).status !== 0) return t.skip("cannot mount a tmpfs here");
    try {
      // 64 MiB of non-zero bytes in a few KiB, without a content size in its header.
      const bomb = execFileSync("sh", ["-c", "head -c 67108864 /dev/zero | tr '\\0' '\\1' | zstd -q --no-content-size -19"], { maxBuffer: 1 << 20 });
      writeFileSync(join(served, "bomb.raw.zst"), bomb);
      const machines = join(run, "machines");
      await assert.rejects(pull(options(`${server.url}/bomb.raw.zst`, join(machines, "bomb.raw"), { verify: { kind: "no" }, memoryLimit: { bytes: 16 * MiB } })),
        /no space left on .*machines \(tmpfs of 16(\.0)? MiB/);
      const mounted = readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((line) => line.split(" ")[4] === machines);
      assert.equal(mounted, false, "the tmpfs netimport mounted is gone");
      assert.deepEqual(readdirSync(machines), []);
      // With a pinned hash, the bomb is refused as soon as its few KiB are in, not after decoding.
      await assert.rejects(pull(options(`${server.url}/bomb.raw.zst`, join(machines, "bomb.raw"), { verify: { kind: "pinned", hash: "4".repeat(64) }, memoryLimit: { bytes: 16 * MiB } })),
        /^Error: checksum mismatch for .*bomb\.raw\.zst/);
    } finally {
      spawnSync("umount", ["-R", run]);
    }
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

describe("pull: the plan, decided once", () => {
  it("says who decodes and whether it hashes; --verify=no hashes nothing, so a pinned pull does not keep that image", () => withServer(async () => {
    const dest = join(out, "os.raw");
    lines.length = 0;
    const unverified = await pull(options(`${server.url}/os.raw.zst`, dest, { verify: { kind: "no" } }));
    assert.equal(unverified.status, "pulled");
    assert.ok(unverified.status === "pulled" && unverified.sha256 === undefined, "no hash without verification");
    assert.ok(lines.some((l) => /os\.raw\.zst: zstd, decoded by \/\S+\/zstd straight into the image file; not hashed \(nothing to verify\)$/.test(l)), lines.join("\n"));
    const record = await recordOfDest(dest);
    assert.equal(record.sha256, undefined, "the record says nothing of a hash it never computed");
    assert.ok(readFileSync(dest).equals(IMAGE));

    lines.length = 0;
    const hash = sha256(readFileSync(join(served, "os.raw.zst")));
    const pinned = await pull(options(`${server.url}/os.raw.zst`, dest, { verify: { kind: "pinned", hash } }));
    assert.equal(pinned.status, "pulled", "downloaded again: the image at DEST was never verified");
    assert.ok(lines.some((l) => /cannot be kept, as it was pulled without verification/.test(l)), lines.join("\n"));
    assert.ok(lines.some((l) => /served bytes hashed \(SHA-256\)$/.test(l)));
    assert.equal((await recordOfDest(dest)).sha256, hash);
  }));

  it("the JS decoders when asked for (decoders: js), into a sparse file", () => withServer(async () => {
    const dest = join(out, "os.raw");
    lines.length = 0;
    await pull(options(`${server.url}/os.raw.xz`, dest, { verify: { kind: "no" }, decoders: "js" }));
    assert.ok(lines.some((l) => /os\.raw\.xz: xz, decoded by netimport's own WASM decoder \(no system binary\), written as a sparse file; not hashed/.test(l)), lines.join("\n"));
    assert.ok(readFileSync(dest).equals(IMAGE));
  }));
});
