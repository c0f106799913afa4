// Hostile archives through the real sink (GNU tar behind TarGuard), each in a fresh parent folder with
// sentinel files: the unpack must fail with the guard's error, and nothing outside the target may change.
import assert from "node:assert/strict";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, test } from "node:test";
import { createTarUnpackSink, requireGnuTar } from "../../../runtime/tar-unpack-sink.ts";
import { archive, entry, header, longLink, longName, oldGnuSparse, pax } from "../../support/tar-build.ts";
import { tempDir } from "../../support/temp-dir.ts";
import { fileInodes, snapshot } from "../../support/tree-snapshot.ts";

const root = tempDir("netimport-tar-escapes-");
let n = 0;

/** A parent folder with sentinels: `secret`, `outside/file`, a symlink, and the empty `target`. */
function sandbox(): { parent: string; target: string } {
  const parent = join(root, `case-${n++}`);
  mkdirSync(join(parent, "outside"), { recursive: true });
  writeFileSync(join(parent, "secret"), "secret\n");
  writeFileSync(join(parent, "outside/file"), "file\n");
  symlinkSync("outside", join(parent, "outside-link"));
  mkdirSync(join(parent, "target"));
  return { parent, target: join(parent, "target") };
}

/** An archive given the sandbox's absolute paths (attackers may know them). */
type Hostile = (parent: string) => Buffer;

const parentEntry = (name: string) => entry(name, { data: "pwned\n" });

const cases: [string, Hostile, RegExp][] = [
  // The three escapes found against node-tar.
  ["(a) a global linkpath applied to a later symlink, then a file through it",
    (parent) => archive(pax({ linkpath: join(parent, "outside") }, "g"), entry("l", { type: "2", linkname: "harmless" }), entry("l/pwned", { data: "x" })),
    /^TarEscapeError: tar entry 'l\/pwned' would be written through the symlink 'l' -> '.*\/outside', which points outside/],
  ["(b) a hard link to a symlink pointing outside, then a file through the hard link",
    (parent) => archive(entry("s", { type: "2", linkname: join(parent, "outside") }), entry("h", { type: "1", linkname: "s" }), entry("h/pwned", { data: "x" })),
    /^TarEscapeError: tar entry 'h\/pwned' would be written through the symlink 'h' -> /],
  ["(b') a hard link that moves an inside symlink to where it points outside",
    () => archive(entry("a/b/", { type: "5" }), entry("a/b/l", { type: "2", linkname: "../x" }), entry("l2", { type: "1", linkname: "a/b/l" }), entry("l2/pwned", { data: "x" })),
    /^TarEscapeError: tar hard link 'l2' to the symlink 'a\/b\/l' -> '\.\.\/x' would be a symlink pointing outside/],
  ["(c) a global linkpath to an outside file, and a hard link",
    (parent) => archive(pax({ linkpath: join(parent, "secret") }, "g"), entry("shadow", { type: "1", linkname: "harmless" })),
    /^TarEscapeError: tar hard link target '.*\/secret' is an absolute path/],
  // Names.
  ["an absolute name", (parent) => archive(parentEntry(join(parent, "outside/pwned"))), /^TarEscapeError: tar entry '.*\/outside\/pwned' is an absolute path/],
  ["a '..' name", () => archive(parentEntry("../outside/pwned")), /^TarEscapeError: tar entry '\.\.\/outside\/pwned' contains '\.\.'/],
  ["a '..' deeper in the name", () => archive(parentEntry("a/../../pwned")), /contains '\.\.'/],
  ["a global path", () => archive(pax({ path: "../pwned" }, "g"), entry("harmless", { data: "x" })), /^TarEscapeError: tar entry '\.\.\/pwned' contains '\.\.'/],
  ["a GNU.sparse.name", () => archive(pax({ "GNU.sparse.name": "../pwned" }), entry("harmless", { data: "x" })), /^TarEscapeError: tar entry '\.\.\/pwned' contains/],
  ["a GNU long name with '..'", () => archive(longName("../../pwned"), entry("short", { data: "x" })), /^TarEscapeError: tar entry '\.\.\/\.\.\/pwned' contains/],
  ["a GNU long name through a symlink", (parent) => archive(entry("l", { type: "2", linkname: join(parent, "outside") }), longName(`l/${"x".repeat(120)}`), entry("short", { data: "x" })),
    /^TarEscapeError: tar entry 'l\/x+' would be written through the symlink 'l'/],
  // Hard links.
  ["a hard link out", () => archive(entry("h", { type: "1", linkname: "../secret" })), /^TarEscapeError: tar hard link target '\.\.\/secret' contains '\.\.'/],
  ["a hard link out by a GNU long link", () => archive(longLink("../secret"), entry("h", { type: "1", linkname: "harmless" })), /^TarEscapeError: tar hard link target '\.\.\/secret' contains/],
  ["a hard link out through a symlink", () => archive(entry("up", { type: "2", linkname: ".." }), entry("h", { type: "1", linkname: "up/secret" })),
    /^TarEscapeError: tar hard link target 'up\/secret' would be written through the symlink 'up' -> '\.\.'/],
  // Symlinks.
  ["a write through an absolute symlink", (parent) => archive(entry("evil", { type: "2", linkname: join(parent, "outside") }), entry("evil/pwned", { data: "x" })),
    /^TarEscapeError: tar entry 'evil\/pwned' would be written through the symlink 'evil' -> '.*outside', which points outside/],
  ["a write through a relative symlink climbing out", () => archive(entry("a/", { type: "5" }), entry("a/up", { type: "2", linkname: "../.." }), entry("a/up/pwned", { data: "x" })),
    /^TarEscapeError: tar entry 'a\/up\/pwned' would be written through the symlink 'a\/up' -> '\.\.\/\.\.'/],
  ["a chain of relative symlinks climbing out", () => archive(entry("one", { type: "2", linkname: "two/.." }), entry("two", { type: "2", linkname: ".." }), entry("one/pwned", { data: "x" })),
    /^TarEscapeError: tar entry 'one\/pwned' would be written through the symlink 'two' -> '\.\.'/],
  ["a chain through an inside symlink to one pointing out", () => archive(entry("d/", { type: "5" }), entry("in", { type: "2", linkname: "d" }), entry("in/out", { type: "2", linkname: "../.." }), entry("d/out/pwned", { data: "x" })),
    /^TarEscapeError: tar entry 'd\/out\/pwned' would be written through the symlink 'd\/out'/],
  ["a symlink made by a pax path, then written through", (parent) => archive(pax({ path: "evil" }), entry("harmless", { type: "2", linkname: join(parent, "outside") }), entry("evil/pwned", { data: "x" })),
    /^TarEscapeError: tar entry 'evil\/pwned' would be written through the symlink 'evil'/],
  ["a symlink whose target comes from a GNU long link", (parent) => archive(longLink(join(parent, "outside")), entry("l", { type: "2", linkname: "harmless" }), entry("l/pwned", { data: "x" })),
    /^TarEscapeError: tar entry 'l\/pwned' would be written through the symlink 'l'/],
  ["a symlink written through with a trailing '.'", (parent) => archive(entry("l", { type: "2", linkname: join(parent, "outside") }), entry("l/.", { type: "5" })),
    /^TarEscapeError: tar entry 'l\/\.' ends in '\.'/],
  ["a folder entry cannot hide a symlink that later entries write through", (parent) => archive(entry("l", { type: "2", linkname: join(parent, "outside") }), entry("x/", { type: "5" }), entry("l/pwned", { data: "x" })),
    /would be written through the symlink 'l'/],
  // Headers where a careless reader sees data, and data where it sees headers.
  ["a pax size of 0 hides a header in what the header's size calls data", () => archive(pax({ size: "0" }), entry("f", { size: 1024, data: Buffer.concat([parentEntry("../pwned")]) })),
    /^TarEscapeError: tar entry '\.\.\/pwned' contains '\.\.'/],
  ["a pax size larger than the header's skips a decoy header", () => {
    // The decoy claims the next block as its data; GNU tar reads the decoy as f's data and the next block as a header.
    const decoy = header({ name: "decoy", size: 512 });
    return archive(pax({ size: "512" }), header({ name: "f", size: 0 }), decoy, parentEntry("../pwned"));
  }, /^TarEscapeError: tar entry '\.\.\/pwned' contains/],
  ["a global pax size hides a header", () => archive(pax({ size: "0" }, "g"), entry("f", { size: 512, data: header({ name: "../pwned" }) })), /^TarEscapeError: tar entry '\.\.\/pwned'/],
  ["a Solaris 'X' size hides a header", () => archive(pax({ size: "0" }, "X"), entry("f", { size: 512, data: header({ name: "../pwned" }) })), /^TarEscapeError: tar entry '\.\.\/pwned'/],
  ["a hard link's size field is no data", () => archive(entry("a", { data: "a" }), entry("h", { type: "1", linkname: "a", data: parentEntry("../pwned") })), /^TarEscapeError: tar entry '\.\.\/pwned'/],
  ["an old GNU sparse extension flag GNU tar ignores", () => archive(
    header({ name: "sp", type: "S", format: "gnu", size: 512, edit: oldGnuSparse([[0, 512]], 512, true) }), Buffer.alloc(512, 0x41), parentEntry("../pwned")),
  /^TarEscapeError: tar entry '\.\.\/pwned'/],
  ["a size GNU tar cannot read (it hunts for the next header)", () => archive(header({ name: "f", size: Buffer.from([0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0]) }), parentEntry("../pwned")),
    /^TarFormatError: tar stream is corrupt: a header with an invalid size/],
  ["a symlink with data (GNU tar reads the data as headers)", () => archive(entry("l", { type: "2", linkname: "x", data: parentEntry("../pwned") })),
    /^TarFormatError: tar stream is not supported: the symlink 'l' has 1024 bytes of data/],
];

describe("the tar sink refuses escapes, and nothing outside the target changes", () => {
  for (const [what, hostile, message] of cases) {
    test(what, async () => {
      const { parent, target } = sandbox();
      const before = snapshot(parent, [target]);
      const outsideFiles = fileInodes(parent, [target]);
      const data = hostile(parent);
      for (const chunk of [1000, 512]) {
        const out = join(target, `chunk-${chunk}`);
        mkdirSync(out);
        await assert.rejects(pipeline(Readable.from([data.subarray(0, chunk), data.subarray(chunk)]), createTarUnpackSink(out, requireGnuTar())), (error: Error) => {
          assert.match(`${error.name}: ${error.message}`, message);
          return true;
        });
      }
      assert.deepEqual(snapshot(parent, [target]), before);
      for (const [path, inode] of [...fileInodes(target)].map(([ino, path]) => [path, ino] as const)) {
        assert.ok(!outsideFiles.has(inode), `${path} is a hard link to ${outsideFiles.get(inode)}, outside the target`);
      }
    });
  }
});
