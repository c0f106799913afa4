// TarGuard against GNU tar itself: for archives that put a header where a careless reader sees data (and
// the other way round), the guard must list exactly the members GNU tar extracts, or refuse the archive.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { TarGuard, type TarMember } from "../../../runtime/tar-guard.ts";
import {
  archive, END, entry, header, longLink, longName, numberField, oldGnuSparse, padded, pax, paxRecord, sparseExtension,
} from "../../support/tar-build.ts";
import { tempDir } from "../../support/temp-dir.ts";

const dir = tempDir("netimport-tar-guard-");
let n = 0;

/** The members GNU tar extracts (its --verbose list), and whether it exited 0. */
function gnuTar(data: Buffer): { names: string[]; ok: boolean } {
  const out = join(dir, `out-${n++}`);
  mkdirSync(out);
  const run = spawnSync("tar", ["--extract", "--verbose", "--file=-", `--directory=${out}`, "--no-overwrite-dir"], { input: data, env: { ...process.env, LC_ALL: "C" } });
  const names = run.stdout.toString("latin1").split("\n").filter(Boolean).map((name) => name.replace(/\/+$/, ""));
  return { names, ok: run.status === 0 };
}

/** The members the guard reads, feeding it `chunk` bytes at a time. */
function guardMembers(data: Buffer, chunk: number): TarMember[] {
  const members: TarMember[] = [];
  const guard = new TarGuard({ onMember: (member) => members.push(member) });
  for (let i = 0; i < data.length && !guard.ended; i += chunk) guard.push(data.subarray(i, i + chunk));
  assert.ok(guard.ended, "the guard saw the end of the archive");
  return members;
}

const hidden = entry("hidden", { data: "h" });
const hiddenHeader = header({ name: "hidden" }); // one block: what a reader taking it for data skips
const after = entry("after", { data: "a" });
const sizeField = (bytes: number[] | string) => (typeof bytes === "string" ? Buffer.from(bytes, "latin1") : Buffer.from(bytes));

/** Archives the guard must read exactly as GNU tar does. */
const agree: [string, Buffer][] = [
  ["plain files", archive(entry("a", { data: "a" }), entry("d/", { type: "5" }), entry("d/b", { data: "b".repeat(1000) }))],
  ["a hard link's size field (GNU tar ignores it: its 'data' is the next header)", archive(entry("a", { data: "a" }), entry("h", { type: "1", linkname: "a", data: hidden }), after)],
  ["a hard link's size field that is not even a number", archive(entry("a", { data: "a" }), header({ name: "h", type: "1", linkname: "a", size: sizeField("garbage!!!!!") }), after)],
  ["an 'x' header replaced by a second one", archive(pax({ path: "p1", linkpath: "lp1" }), pax({ path: "p2" }), entry("orig", { type: "2", linkname: "origlink" }))],
  ["a 'g' header replaced by a second one", archive(pax({ linkpath: "glink", path: "gp" }, "g"), pax({ comment: "x" }, "g"), entry("s", { type: "2", linkname: "own" }))],
  ["a 'g' path applies to every member until an 'x' path", archive(pax({ path: "gp" }, "g"), entry("s1", { data: "1" }), pax({ path: "xp" }), entry("s2", { data: "2" }))],
  ["a 'g' size applies to every member", archive(pax({ size: "1024" }, "g"), entry("f", { data: Buffer.alloc(1024, 1), size: 0 }), entry("g", { size: 0, data: Buffer.alloc(1024, 2) }))],
  ["an 'x' size overrides the header's", archive(pax({ size: "0" }), entry("f", { data: Buffer.concat([hidden]), size: 512 }), after)],
  ["an 'x' size of more than the header's", archive(pax({ size: "512" }), header({ name: "f", size: 0 }), hiddenHeader, after)],
  ["Solaris 'X' headers read as 'x'", archive(pax({ path: "solaris", size: "0" }, "X"), entry("f", { data: hidden, size: 512 }), after)],
  ["a GNU long name, then a pax path (which wins)", archive(longName("long-" + "n".repeat(200)), pax({ path: "short" }), entry("x", { data: "x" }))],
  ["a GNU long name survives a 'g' header", archive(longName("long-" + "n".repeat(200)), pax({ comment: "c" }, "g"), entry("x", { data: "x" }))],
  ["a GNU long link target", archive(longLink("t".repeat(300)), entry("l", { type: "2", linkname: "ignored" }))],
  ["GNU.sparse.name wins over a later path", archive(pax([["GNU.sparse.name", "sn"], ["path", "pp"]]), entry("o", { data: "o" }))],
  ["a path before GNU.sparse.name loses", archive(pax([["path", "pp"], ["GNU.sparse.name", "sn"]]), entry("o", { data: "o" }))],
  ["pax records with blanks before the length and the keyword", archive(entry("x", { type: "x", data: "  15 \t path=sp\n" }), entry("o", { data: "o" }))],
  ["a pax value ends at its first NUL", archive(pax([["path", Buffer.from("ab\0cd")]]), entry("o", { data: "o" }))],
  ["a NUL where a pax record would start ends the records", archive(entry("x", { type: "x", data: Buffer.concat([paxRecord("path", "q1"), Buffer.alloc(20), paxRecord("linkpath", "zz")]) }), entry("o", { type: "2", linkname: "l" }))],
  ["the first zero block ends the archive", Buffer.concat([entry("a", { data: "a" }), Buffer.alloc(512), hidden, END])],
  ["an 'x' header right before the end", Buffer.concat([entry("a", { data: "a" }), pax({ path: "never" }), END])],
  ["sizes with a leading NUL, leading blanks, trailing blanks, or all NULs", archive(
    header({ name: "f1", size: sizeField("\x000000001000\x00".slice(0, 12)) }), Buffer.alloc(512),
    header({ name: "f2", size: sizeField("   1000     ") }), Buffer.alloc(512),
    header({ name: "f3", size: Buffer.alloc(12) }), after)],
  ["a GNU base-256 size", archive(header({ name: "f", size: Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0]) }), Buffer.alloc(512), after)],
  ["a signed checksum (old tars)", (() => {
    const block = header({ name: "signed", edit: (h) => h.write("\xe9t\xe9", 265, "latin1") }); // high bytes in the user name
    let signed = 0;
    block.fill(0x20, 148, 156);
    for (const byte of block) signed += byte > 127 ? byte - 256 : byte;
    block.write(`${signed.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    return archive(block, after);
  })()],
  ["the ustar prefix (but not in GNU format, where those bytes are times)", archive(entry("name", { prefix: "pre/fix", data: "p" }), entry("gnu", { format: "gnu", data: "g", edit: (h) => h.write("notaprefix", 345) }))],
  ["an unknown type (a regular file to GNU tar)", archive(entry("q", { type: "Q", data: hidden }), after)],
  ["a volume label (skipped with its data)", archive(entry("label", { type: "V", data: hidden }), after)],
  ["old GNU sparse: the extension flag counts only when the header's 4 slots are used", archive(
    header({ name: "sp", type: "S", format: "gnu", size: 512, edit: oldGnuSparse([[0, 512]], 512, true) }), Buffer.alloc(512, 0x41), hidden, after)],
  ["old GNU sparse with extension blocks", archive(
    header({ name: "sp", type: "S", format: "gnu", size: 6 * 512, edit: oldGnuSparse([[0, 1], [1000, 512], [3000, 10], [5000, 1]], 9000, true) }),
    // The first extension block's map ends before its 21 slots: its extension flag no longer counts.
    sparseExtension([[6000, 1], [8000, 1]], true), Buffer.alloc(6 * 512, 0x42), after)],
  ["old GNU sparse with two extension blocks", archive(
    header({ name: "sp", type: "S", format: "gnu", size: 27 * 512, edit: oldGnuSparse(Array.from({ length: 4 }, (_, i) => [i * 1024, 512]), 27 * 1024, true) }),
    sparseExtension(Array.from({ length: 21 }, (_, i) => [(i + 4) * 1024, 512]), true), sparseExtension([[25 * 1024, 512], [26 * 1024, 512]]),
    Buffer.alloc(27 * 512, 0x43), after)],
  ["pax sparse 1.0", archive(pax([["GNU.sparse.major", "1"], ["GNU.sparse.minor", "0"], ["GNU.sparse.name", "sparse"], ["GNU.sparse.realsize", "4096"]]),
    entry("GNUSparseFile.0/sparse", { data: Buffer.concat([padded(Buffer.from("2\n0\n10\n3000\n600\n")), Buffer.alloc(512, 1), Buffer.alloc(1024, 2)]) }), after)],
];

/** Archives GNU tar reads in a way the guard will not follow: it must refuse them. */
const refuse: [string, Buffer, RegExp][] = [
  ["a symlink with data (GNU tar reads its data as headers, unless extracting it fails)", archive(entry("l", { type: "2", linkname: "t", data: hidden }), after), /the symlink 'l' has 1024 bytes of data/],
  ["a folder with data", archive(entry("d/", { type: "5", data: hidden }), after), /the folder 'd' has 1024 bytes/],
  ["a regular file named 'x/' with data (a folder to GNU tar)", archive(entry("r/", { data: hidden }), after), /the folder 'r' has 1024 bytes/],
  ["a pax size on a hard link", archive(entry("a", { data: "a" }), pax({ size: "512" }), entry("h", { type: "1", linkname: "a" }), hidden, after), /the hard link 'h' has 512 bytes/],
  ["a device with a global pax size", archive(pax({ size: "512" }, "g"), entry("c", { type: "3" }), hidden, after), /the device or FIFO 'c' has 512/],
  ["a size GNU tar cannot read (base-256 must start with 0x80)", archive(header({ name: "f", size: Buffer.from([0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]) }), hidden, after), /a header with an invalid size/],
  ["a negative base-256 size", archive(header({ name: "f", size: Buffer.alloc(12, 0xff) }), hidden, after), /invalid size/],
  ["a base-64 size (tar 1.13 test releases)", archive(header({ name: "f", size: sizeField("+AAAAAAAAAI\0") }), hidden, after), /invalid size/],
  ["an all-blank size", archive(header({ name: "f", size: sizeField("            ") }), after), /invalid size/],
  ["an octal size with garbage after it", archive(header({ name: "f", size: sizeField("00000001000x") }), after), /invalid size/],
  ["a bad checksum (GNU tar would hunt for the next good header)", archive(header({ name: "f", badChecksum: true }), after), /header checksum mismatch/],
  ["a pax size that is not a number", archive(pax({ size: "12abc" }), entry("f", { data: "f" })), /pax record size=12abc/],
  ["a malformed pax record", archive(entry("x", { type: "x", data: "99 path=p\n" }), entry("f", { data: "f" })), /pax record longer than its header/],
  ["a pax record without its newline", archive(entry("x", { type: "x", data: "11 path=pp!" }), entry("f", { data: "f" })), /malformed pax record/],
  ["old GNU sparse data beyond the size field", archive(header({ name: "sp", type: "S", format: "gnu", size: 0, edit: oldGnuSparse([[0, 512]], 512) }), hidden, after), /does not match its size/],
  ["old GNU sparse with a map entry past the real size", archive(header({ name: "sp", type: "S", format: "gnu", size: 512, edit: oldGnuSparse([[0, 512]], 100) }), Buffer.alloc(512), after), /invalid sparse map/],
  ["an 'S' member outside GNU format (read as a regular file, or as star's sparse format)", archive(header({ name: "sp", type: "S", size: 512 }), hidden, after), /not in GNU format/],
  ["pax sparse 0.x", archive(pax([["GNU.sparse.size", "10"], ["GNU.sparse.map", "0,1"]]), entry("f", { data: "f" })), /writes no more/],
  ["pax sparse keywords in a global header", archive(pax({ "GNU.sparse.major": "1" }, "g"), entry("f", { data: "f" })), /global pax header sets 'GNU.sparse.major'/],
  ["pax sparse 1.0 outside a POSIX header", archive(pax([["GNU.sparse.major", "1"], ["GNU.sparse.minor", "0"]]), entry("f", { format: "gnu", data: "2\n0\n1\n" })), /a pax sparse file other than GNU tar.s/],
  ["pax sparse 1.0 whose map reads past its data", archive(pax([["GNU.sparse.major", "1"], ["GNU.sparse.minor", "0"]]), entry("f", { data: padded(Buffer.from("1\n0\n5000\n")) }), hidden, after), /does not match its size/],
  ["pax sparse 1.0 with a map longer than its data", archive(pax([["GNU.sparse.major", "1"], ["GNU.sparse.minor", "0"]]), entry("f", { size: 1, data: "300\n" + "0\n".repeat(600) }), after), /larger than its data/],
  ["a multi-volume continuation", archive(entry("m", { type: "M", data: "m" })), /type 'M'/],
  ["an incremental dump folder", archive(entry("d", { type: "D", data: "d" })), /type 'D'/],
  ["a huge pax header", archive(header({ name: "x", type: "x", size: 2 * 1024 * 1024 })), /an? 'x' header has 2097152 bytes/],
];

describe("TarGuard reads archives as GNU tar 1.34 does", () => {
  for (const [what, data] of agree) {
    test(what, () => {
      const gnu = gnuTar(data);
      for (const chunk of [1, 100, 512, 4096, data.length]) {
        assert.deepEqual(guardMembers(data, chunk).map((member) => member.name), gnu.names, `chunk ${chunk}`);
      }
    });
  }
});

describe("TarGuard refuses archives it cannot read as GNU tar would", () => {
  for (const [what, data, message] of refuse) {
    test(what, () => {
      assert.throws(() => guardMembers(data, 700), (error: Error) => error.name === "TarFormatError" && message.test(error.message));
    });
  }
});

describe("TarGuard", () => {
  test("reads pax link targets as GNU tar does", () => {
    const members = guardMembers(archive(pax({ linkpath: "glink" }, "g"), entry("s1", { type: "2", linkname: "own" }), pax({ linkpath: "xlink" }), entry("s2", { type: "2" })), 300);
    assert.deepEqual(members.map((member) => member.linkname), ["glink", "xlink"]);
  });

  test("keeps failing once it has refused an entry", () => {
    const guard = new TarGuard();
    assert.throws(() => guard.push(archive(entry("../x", { data: "x" }))), /contains '\.\.'/);
    assert.throws(() => guard.push(entry("fine", { data: "x" })), /contains '\.\.'/);
  });

  test("says where a truncated archive ends", () => {
    const guard = new TarGuard();
    assert.equal(guard.push(entry("big", { data: "y".repeat(2000) }).subarray(0, 1000)), 1000);
    assert.equal(guard.truncation(), "it ends inside the data of 'big' after 1 entries");
    const ended = new TarGuard();
    assert.equal(ended.push(Buffer.concat([entry("a"), END, Buffer.alloc(100)])), 1024, "the bytes up to the first zero block");
    assert.equal(ended.truncation(), undefined);
    assert.equal(ended.push(Buffer.alloc(100)), 0);
  });
});
