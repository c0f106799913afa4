import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chownSync, chmodSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import { TarGuard } from "../../../runtime/tar-guard.ts";
import { createTarUnpackSink, findGnuTar } from "../../../runtime/tar-unpack-sink.ts";

/** One ustar header (+ data, padded): enough to craft hostile archives by hand. */
function entry(name: string, options: { type?: string; linkname?: string; data?: string } = {}): Buffer {
  const data = Buffer.from(options.data ?? "");
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, "utf8");
  header.write("0000644\0", 100);
  header.write("0000000\0", 108);
  header.write("0000000\0", 116);
  header.write(`${data.length.toString(8).padStart(11, "0")}\0`, 124);
  header.write("00000000000\0", 136);
  header.write(options.type ?? "0", 156);
  header.write(options.linkname ?? "", 157, 100, "utf8");
  header.write("ustar\0" + "00", 257, "latin1");
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return Buffer.concat([header, data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}
const archive = (...entries: Buffer[]) => Buffer.concat([...entries, Buffer.alloc(1024)]);
/** A GNU long name entry ('L') naming the next entry. */
const longName = (name: string) => entry("././@LongLink", { type: "L", data: `${name}\0` });
/** A pax extended header ('x') giving the next entry's path. */
function paxPath(path: string): Buffer {
  const body = ` path=${path}\n`;
  let length = body.length + 1;
  while (`${length}${body}`.length !== length) length++;
  return entry("PaxHeaders/x", { type: "x", data: `${length}${body}` });
}

let dir: string;
let n = 0;
const fresh = () => {
  const d = join(dir, `out-${n++}`);
  mkdirSync(d);
  return d;
};
const unpack = (data: Buffer, target: string, implementation: "gnu" | "js", chunk = 700) => {
  const pieces = function* () {
    for (let i = 0; i < data.length; i += chunk) yield data.subarray(i, i + chunk);
  };
  return pipeline(Readable.from(pieces()), createTarUnpackSink(target, { implementation }));
};

before(() => { dir = mkdtempSync(join(tmpdir(), "netimport-tar-")); });
after(() => rmSync(dir, { recursive: true, force: true }));

const implementations = findGnuTar() ? (["gnu", "js"] as const) : (["js"] as const);

describe("createTarUnpackSink", () => {
  let tree: Buffer;
  before(() => {
    // A small root file system: owners, modes, setuid, symlinks (one absolute), a hard link, a device
    // node, a FIFO, an xattr, a long name.
    const src = join(dir, "src");
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
    writeFileSync(join(src, `${"long-".repeat(30)}name`), "long");
    tree = execFileSync("tar", ["--create", "--file=-", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", src, "."], { maxBuffer: 1 << 24 });
  });

  for (const implementation of implementations) {
    describe(implementation === "gnu" ? "with GNU tar" : "with node-tar", () => {
      test("unpacks owners, modes, links" + (implementation === "gnu" ? ", devices, FIFOs and xattrs" : ""), async () => {
        const out = fresh();
        await unpack(tree, out, implementation);
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
        if (implementation === "gnu") {
          assert.ok(lstatSync(join(out, "null")).isCharacterDevice());
          assert.equal(lstatSync(join(out, "null")).rdev, lstatSync("/dev/null").rdev);
          assert.ok(lstatSync(join(out, "fifo")).isFIFO());
          const xattr = execFileSync("getfattr", ["--only-values", "-n", "user.netimport", join(out, "etc/hostname")], { encoding: "utf8" });
          assert.equal(xattr, "yes");
        } else {
          assert.ok(!existsSync(join(out, "null")), "node-tar skips device nodes");
        }
      });

      test("a relative symlink inside the folder may be written through", async () => {
        const out = fresh();
        await unpack(archive(entry("usr/lib/", { type: "5" }), entry("lib", { type: "2", linkname: "usr/lib" }), entry("lib/libc.so", { data: "libc" })), out, implementation);
        assert.equal(readFileSync(join(out, "usr/lib/libc.so"), "utf8"), "libc");
      });

      const escapes: [string, Buffer, RegExp][] = [
        ["a '..' name", archive(entry("../escaped", { data: "x" })), /tar entry '\.\.\/escaped' contains '\.\.'/],
        ["an absolute name", archive(entry("/escaped", { data: "x" })), /tar entry '\/escaped' is an absolute path/],
        ["a write through an absolute symlink", archive(entry("evil", { type: "2", linkname: join(dir, "outside") }), entry("evil/passwd", { data: "x" })),
          /tar entry 'evil\/passwd' would be written through the symlink 'evil' -> '.*outside', which points outside the target folder/],
        ["a write through a relative symlink leading out", archive(entry("a/", { type: "5" }), entry("a/up", { type: "2", linkname: "../.." }), entry("a/up/escaped", { data: "x" })),
          /would be written through the symlink 'a\/up' -> '\.\.\/\.\.'/],
        ["a chain of symlinks leading out", archive(entry("one", { type: "2", linkname: "two/.." }), entry("two", { type: "2", linkname: ".." }), entry("one/escaped", { data: "x" })),
          /points outside the target folder/],
        ["a GNU long name with '..'", archive(longName("../../escaped"), entry("././@LongLink-short", { data: "x" })), /contains '\.\.'/],
        ["a pax path with '..'", archive(paxPath("x/../../escaped"), entry("harmless", { data: "x" })), /tar entry 'x\/\.\.\/\.\.\/escaped' contains '\.\.'/],
        ["a hard link to an outside file", archive(entry("shadow", { type: "1", linkname: "../outside/secret" })), /hard link target .* contains '\.\.'/],
      ];
      for (const [what, data, message] of escapes) {
        test(`refuses ${what}`, async () => {
          const out = fresh();
          mkdirSync(join(dir, "outside"), { recursive: true });
          await assert.rejects(unpack(data, out, implementation), message);
          await new Promise((resolve) => setTimeout(resolve, 50)); // an extractor still writing would show now
          assert.deepEqual(readdirSync(join(dir, "outside")), []);
          assert.ok(!existsSync(join(dir, "escaped")));
        });
      }

      test("a truncated archive fails", async () => {
        const out = fresh();
        const big = archive(entry("big", { data: "y".repeat(20000) }));
        await assert.rejects(unpack(big.subarray(0, 5000), out, implementation), /tar failed/);
      });
    });
  }

  test("refuses a folder that is not empty, and a missing one", async () => {
    const out = fresh();
    writeFileSync(join(out, "something"), "");
    await assert.rejects(unpack(archive(entry("a", { data: "a" })), out, "js"), /is not empty: refusing to unpack into it/);
    await assert.rejects(unpack(archive(entry("a", { data: "a" })), join(dir, "missing"), "js"), /missing does not exist/);
  });

  test("a damaged header is reported as corrupt", async () => {
    const data = archive(entry("a", { data: "a" }), entry("b", { data: "b" }));
    data[1024 + 3]! ^= 0xff; // the second header's name: its checksum no longer matches
    await assert.rejects(unpack(data, fresh(), "js"), /tar stream is corrupt: header checksum mismatch after 1 entries/);
  });
});

describe("TarGuard", () => {
  test("follows headers across arbitrary chunk boundaries and skips file data", () => {
    const data = archive(entry("a", { data: "../not-a-header".repeat(100) }), entry("lib", { type: "2", linkname: "/usr/lib" }), entry("b", { data: "b" }));
    for (const size of [1, 511, 513, 4096]) {
      const guard = new TarGuard();
      for (let i = 0; i < data.length; i += size) guard.push(data.subarray(i, i + size));
      assert.equal(guard.entries, 3);
    }
  });
});
