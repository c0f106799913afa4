import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync,
  symlinkSync, truncateSync, writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { before, describe, test } from "node:test";
import { createTarUnpackSink, requireGnuTar } from "../../../runtime/tar-unpack-sink.ts";
import { archive, END, entry, header } from "../../support/tar-build.ts";
import { tempDir } from "../../support/temp-dir.ts";

const dir = tempDir("netimport-tar-");
let n = 0;
const fresh = () => {
  const d = join(dir, `out-${n++}`);
  mkdirSync(d);
  return d;
};
const unpack = (data: Buffer, target: string, chunk = 700) => {
  const pieces = function* () {
    for (let i = 0; i < data.length; i += chunk) yield data.subarray(i, i + chunk);
  };
  return pipeline(Readable.from(pieces()), createTarUnpackSink(target, requireGnuTar()));
};
const tar = (args: string[], cwd: string) => execFileSync("tar", args, { cwd, maxBuffer: 1 << 26 });

/** The id of the running GNU tar that unpacks into `target` (zombies have no command line). */
function tarPid(target: string): number | undefined {
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0").includes(`--directory=${target}`)) return Number(pid);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}
async function waitFor<T>(probe: () => T | undefined): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const value = probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error("timed out");
}

/** Many small files: long enough that tar is busy when the stream stops. */
const many = archive(...Array.from({ length: 800 }, (_, i) => entry(`d${i % 8}/file-${i}`, { data: Buffer.alloc(3000, i) })));

test("GNU tar is installed (the tests below use it)", () => {
  assert.doesNotThrow(() => requireGnuTar(), "GNU tar is needed on the test machine");
});

describe("requireGnuTar", () => {
  const run = (path: string) => spawnSync(process.execPath, ["--input-type=module", "-e",
    `import { requireGnuTar } from ${JSON.stringify(join(import.meta.dirname, "../../../runtime/tar-unpack-sink.ts"))};
     try { requireGnuTar(); console.log("found"); } catch (error) { console.log(error.message); }`], { env: { ...process.env, PATH: path }, encoding: "utf8" });

  test("says how to fix a missing GNU tar", () => {
    const empty = join(dir, "empty-path");
    mkdirSync(empty);
    assert.equal(run(empty).stdout.trim(), "tar images need GNU tar, and there is none on PATH (busybox tar lacks numeric owners, xattrs and ACLs): add GNU tar to the initrd");
  });

  test("recognizes a tar that is not GNU tar", () => {
    const busybox = join(dir, "busybox-path");
    mkdirSync(busybox);
    writeFileSync(join(busybox, "tar"), "#!/bin/sh\necho 'BusyBox v1.36.1 multi-call binary.'\n", { mode: 0o755 });
    assert.match(run(busybox).stdout.trim(), /^tar images need GNU tar, and .*busybox-path\/tar is not GNU tar \(busybox tar lacks/);
  });
});

describe("createTarUnpackSink", () => {
  let tree: Buffer;
  let src: string;
  before(() => {
    // A small root file system: owners, modes, setuid, symlinks (one absolute), a hard link, a device
    // node, a FIFO, an xattr, a file capability, a long name.
    src = join(dir, "src");
    mkdirSync(join(src, "etc"), { recursive: true });
    mkdirSync(join(src, "usr/bin"), { recursive: true });
    mkdirSync(join(src, "root"), { mode: 0o700 });
    writeFileSync(join(src, "etc/hostname"), "image\n");
    writeFileSync(join(src, "etc/shadow"), "root:*:\n");
    chmodSync(join(src, "etc/shadow"), 0o640);
    chownSync(join(src, "etc/shadow"), 0, 42);
    writeFileSync(join(src, "usr/bin/su"), "#!/bin/sh\n");
    chmodSync(join(src, "usr/bin/su"), 0o4755);
    writeFileSync(join(src, "usr/bin/tool"), "tool");
    chownSync(join(src, "usr/bin/tool"), 1234, 5678);
    linkSync(join(src, "usr/bin/tool"), join(src, "usr/bin/tool-again"));
    symlinkSync("usr/bin", join(src, "bin"));
    symlinkSync("/proc/self/mounts", join(src, "etc/mtab"));
    execFileSync("mknod", [join(src, "null"), "c", "1", "3"]);
    execFileSync("mkfifo", [join(src, "fifo")]);
    execFileSync("setfattr", ["-n", "user.netimport", "-v", "yes", join(src, "etc/hostname")]);
    execFileSync("setfattr", ["-n", "security.capability", "-v", "0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=", join(src, "usr/bin/tool")]);
    writeFileSync(join(src, `${"long-".repeat(30)}name`), "long");
    mkdirSync(join(src, `${"deep-folder-name/".repeat(12)}`), { recursive: true });
    writeFileSync(join(src, `${"deep-folder-name/".repeat(12)}file`), "deep");
    tree = tar(["--create", "--file=-", "--numeric-owner", "--xattrs", "--xattrs-include=*", "."], src);
  });

  const checkTree = (out: string) => {
    assert.equal(readFileSync(join(out, "etc/hostname"), "utf8"), "image\n");
    assert.equal(statSync(join(out, "etc/shadow")).mode & 0o7777, 0o640);
    assert.equal(statSync(join(out, "etc/shadow")).gid, 42);
    assert.equal(statSync(join(out, "usr/bin/su")).mode & 0o7777, 0o4755);
    assert.equal(statSync(join(out, "root")).mode & 0o7777, 0o700);
    const tool = statSync(join(out, "usr/bin/tool"));
    assert.deepEqual([tool.uid, tool.gid], [1234, 5678]);
    assert.equal(statSync(join(out, "usr/bin/tool-again")).ino, tool.ino);
    assert.equal(readlinkSync(join(out, "bin")), "usr/bin");
    assert.equal(readlinkSync(join(out, "etc/mtab")), "/proc/self/mounts");
    assert.equal(readFileSync(join(out, `${"long-".repeat(30)}name`), "utf8"), "long");
    assert.equal(readFileSync(join(out, `${"deep-folder-name/".repeat(12)}file`), "utf8"), "deep");
    assert.ok(lstatSync(join(out, "null")).isCharacterDevice());
    assert.equal(lstatSync(join(out, "null")).rdev, lstatSync("/dev/null").rdev);
    assert.ok(lstatSync(join(out, "fifo")).isFIFO());
    const xattr = execFileSync("getfattr", ["--only-values", "-n", "user.netimport", join(out, "etc/hostname")], { encoding: "utf8" });
    assert.equal(xattr, "yes");
    const capability = execFileSync("getfattr", ["--only-values", "-n", "security.capability", join(out, "usr/bin/tool")]);
    assert.deepEqual(capability, Buffer.from("AQAAAgAgAAAAAAAAAAAAAAAAAAA=", "base64"));
  };

  test("unpacks owners, modes, links, devices, FIFOs, xattrs and capabilities (GNU format)", async () => {
    const out = fresh();
    await unpack(tree, out);
    checkTree(out);
  });

  test("unpacks the same tree from a POSIX (pax) archive, across any chunk size", async () => {
    const pax = tar(["--create", "--file=-", "--format=posix", "--numeric-owner", "--xattrs", "--xattrs-include=*", "."], src);
    for (const chunk of [1, 511, 4096, 1 << 20]) {
      const out = fresh();
      await unpack(pax, out, chunk);
      checkTree(out);
    }
  });

  test("unpacks sparse files in both GNU tar formats (old GNU extension blocks, pax 1.0 maps)", async () => {
    const sparse = join(dir, "sparse-src");
    mkdirSync(sparse);
    const expected = Buffer.alloc(1 << 20);
    // 40 data regions: more than the 4 in an old GNU header and the 21 of one extension block.
    for (let i = 0; i < 40; i++) expected.fill(i + 1, i * 16384 + (i % 3) * 100, i * 16384 + 700 + i * 37);
    for (let i = 0; i < 40; i++) {
      const start = i * 16384 + (i % 3) * 100;
      execFileSync("dd", ["of=" + join(sparse, "holes"), "bs=1", `seek=${start}`, "conv=notrunc", "status=none"], { input: expected.subarray(start, i * 16384 + 700 + i * 37) });
    }
    truncateSync(join(sparse, "holes"), expected.length);
    writeFileSync(join(sparse, "after"), "after");
    for (const format of ["gnu", "posix"]) {
      const data = tar(["--create", "--file=-", "--sparse", `--format=${format}`, "holes", "after"], sparse);
      const listing = execFileSync("tar", ["--list", "--verbose", "--file=-"], { input: data, encoding: "utf8" });
      assert.match(listing, /holes/);
      const out = fresh();
      await unpack(data, out, 1000);
      assert.ok(readFileSync(join(out, "holes")).equals(expected), `${format}: the sparse file's content`);
      assert.equal(readFileSync(join(out, "after"), "utf8"), "after");
      if (format === "gnu") assert.ok(data.includes(Buffer.from("ustar  \0")) && data[156] === 0x53, "an old GNU sparse header ('S')");
      else assert.ok(data.includes(Buffer.from("GNU.sparse.major=1")), "a pax 1.0 sparse file");
    }
  });

  test("a relative symlink inside the folder may be written through", async () => {
    const out = fresh();
    await unpack(archive(entry("usr/lib/", { type: "5" }), entry("lib", { type: "2", linkname: "usr/lib" }), entry("lib/libc.so", { data: "libc" })), out);
    assert.equal(readFileSync(join(out, "usr/lib/libc.so"), "utf8"), "libc");
  });

  test("ignores what follows the end of the archive, and accepts a single end block", async () => {
    const out = fresh();
    const trailing = Buffer.concat([entry("a", { data: "a" }), Buffer.alloc(512), entry("../../after-the-end", { data: "x" }), Buffer.alloc(9000, 7)]);
    await unpack(trailing, out);
    assert.deepEqual(readdirSync(out), ["a"]);
  });

  test("refuses a folder that is not empty, and a missing one", async () => {
    const out = fresh();
    writeFileSync(join(out, "something"), "");
    await assert.rejects(unpack(archive(entry("a", { data: "a" })), out), /is not empty: refusing to unpack into it/);
    await assert.rejects(unpack(archive(entry("a", { data: "a" })), join(dir, "missing")), /missing does not exist/);
  });

  test("a damaged header is reported as corrupt", async () => {
    const data = archive(entry("a", { data: "a" }), entry("b", { data: "b" }));
    data[1024 + 3]! ^= 0xff; // the second header's name: its checksum no longer matches
    await assert.rejects(unpack(data, fresh()), /^TarFormatError: tar stream is corrupt: header checksum mismatch after 1 entries$/);
  });

  test("tar's own failure is reported with its message", async () => {
    const out = fresh();
    // A file where the archive then wants a folder's child: GNU tar fails ("Not a directory") and says so.
    await assert.rejects(unpack(archive(entry("f", { data: "f" }), entry("f/child", { data: "c" })), out), /^Error: tar failed \(2\): tar: f\/child: Cannot open: Not a directory/);
  });

  /** Streams `head`, waits until tar runs, then `stop`s; returns tar's process id and the pipeline's outcome. */
  async function interrupt(head: Buffer, stop: (source: Readable, abort: AbortController, pid: number) => void, settleMs = 50) {
    const out = fresh();
    const source = new Readable({ read() { /* pushed below */ } });
    const abort = new AbortController();
    const done = pipeline(source, createTarUnpackSink(out, requireGnuTar()), { signal: abort.signal });
    done.catch(() => { /* awaited below */ });
    source.push(head);
    const pid = await waitFor(() => tarPid(out));
    await new Promise((resolve) => setTimeout(resolve, settleMs)); // let tar unpack some of it
    stop(source, abort, pid);
    const error = await done.then(() => undefined, (error: Error) => error);
    return { out, pid, error };
  }

  test("an abort mid-archive kills tar and waits for it: the folder can be removed at once", async () => {
    const { out, pid, error } = await interrupt(many.subarray(0, 1_000_000), (_, abort) => abort.abort());
    assert.equal(error?.name, "AbortError");
    assert.ok(!existsSync(`/proc/${pid}`), "tar has exited (and been reaped) when the pipeline rejects");
    rmSync(out, { recursive: true });
    assert.ok(!existsSync(out));
  });

  test("an upstream error (a corrupt compressed stream) is the one reported, after tar has exited", async () => {
    const { out, pid, error } = await interrupt(many.subarray(0, 1_000_000), (source) => source.destroy(new Error("xz stream is corrupt: test")));
    assert.equal(error?.message, "xz stream is corrupt: test");
    assert.ok(!existsSync(`/proc/${pid}`));
    rmSync(out, { recursive: true });
  });

  // tar has read all it was given and waits for more (so no write of ours is pending): its death must
  // still end the sink at once. The timeout turns a hang into a failure.
  test("tar killed by SIGTERM (systemd stopping the unit) fails the sink with tar's status", { timeout: 20_000 }, async () => {
    const { out, pid, error } = await interrupt(many.subarray(0, 1_000_000), (_, __, pid) => process.kill(pid, "SIGTERM"), 1000);
    assert.ok(error);
    assert.match(error.message, /^tar failed \(SIGTERM\)/);
    assert.ok(!existsSync(`/proc/${pid}`));
    rmSync(out, { recursive: true });
  });

  test("a truncated stream says so, and tar has exited when it does", async () => {
    const { out, pid, error } = await interrupt(many.subarray(0, 279 * 3584 + 1000), (source) => source.push(null));
    assert.ok(error);
    assert.match(error.message, /^tar stream is truncated: it ends inside the data of 'd\d\/file-\d+' after \d+ entries$/);
    assert.ok(!existsSync(`/proc/${pid}`));
    rmSync(out, { recursive: true });
    // Without the end-of-archive block, and inside a header.
    await assert.rejects(unpack(Buffer.concat([entry("a", { data: "a" })]), fresh()), /^Error: tar stream is truncated: it ends without the end-of-archive block after 1 entries$/);
    await assert.rejects(unpack(Buffer.concat([entry("a", { data: "a" }), header({ name: "b" }).subarray(0, 100)]), fresh()), /^Error: tar stream is truncated: it ends inside a header after 1 entries$/);
    assert.equal(END.length, 1024);
  });
});
