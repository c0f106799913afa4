// Real loop devices (we are root): every device a test attaches is detached in after(), even on failure.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { lstatSync, mkdtempSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseAttachArgs } from "../../../runtime/attach-command.ts";
import { attachImage, describeOutcome, linkAtomically } from "../../../runtime/loop-attach.ts";
import { copyImage, corruptByte, detachAll, loopsOf, makeExt4, makeGptImage, MIB, ROOT_LABEL } from "./disk-fixtures.ts";

let dir: string;
let gpt: string;
let plain: string;
const images: string[] = [];

const label = (device: string) => execFileSync("blkid", ["-p", "-o", "value", "-s", "LABEL", device], { encoding: "utf8" }).trim();
const blockdev = (flag: string, device: string) => execFileSync("blockdev", [flag, device], { encoding: "utf8" }).trim();

const main = fileURLToPath(new URL("../../../runtime/main.ts", import.meta.url));

/** Runs `netimport attach ARGS` (runtime/main.ts on this Node), capturing its exit status and output. */
function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [main, "attach", ...argv], { encoding: "utf8" }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), "netimport-attach-"));
  gpt = join(dir, "image.raw");
  plain = join(dir, "plain.raw");
  makeGptImage(gpt);
  makeExt4(plain, 8 * MIB, "plain-fs");
  images.push(gpt, plain);
});
after(() => {
  for (const image of images) detachAll(image);
  rmSync(dir, { recursive: true, force: true });
});

describe("netimport attach", () => {
  test("attaches the x86-64 root partition read-only and links it", { skip: process.arch !== "x64" }, async () => {
    const link = join(dir, "run/netimport/root");
    const { code, stdout, stderr } = await cli([gpt, `--link=${link}`]);
    assert.equal(stderr, "");
    assert.equal(code, 0);
    const device = readlinkSync(link);
    assert.match(device, /^\/dev\/loop\d+$/);
    assert.equal(stdout, `Attached root partition 2 "root-x86-64" (ext4) of ${gpt} at ${device} (read-only), linked at ${link}\n`);
    assert.equal(label(link), ROOT_LABEL);
    assert.equal(blockdev("--getro", device), "1");
    assert.equal(blockdev("--getsize64", device), String(32 * MIB));
    detachAll(gpt);
  });

  test("a plain file system image is attached whole; --rw makes it writable", async () => {
    const { code, stdout } = await cli([plain, "--rw"]);
    assert.equal(code, 0);
    const [device] = loopsOf(plain);
    assert.equal(stdout, `Attached the whole image ${plain} (ext4) (no GPT) at ${device} (read-write)\n`);
    assert.equal(label(device!), "plain-fs");
    assert.equal(blockdev("--getro", device!), "0");
    detachAll(plain);
  });

  test("--partition=N attaches that partition, --partition=whole the whole image", async () => {
    const first = await attachImage(gpt, { partition: 1 });
    const [one] = first.attachments;
    try {
      assert.equal(one!.partition?.number, 1);
      assert.equal(blockdev("--getsize64", one!.device), String(4 * MIB));
      assert.deepEqual(describeOutcome(first).map((line) => line.replace(/\/dev\/loop\d+/, "/dev/loopN").replace(gpt, "GPT")),
        ['Attached partition 1 "esp" of GPT at /dev/loopN (read-only)']);
    } finally {
      detachAll(gpt);
    }
    const second = await attachImage(gpt, { partition: "whole" });
    const [whole] = second.attachments;
    try {
      assert.equal(blockdev("--getsize64", whole!.device), String(48 * MIB));
      assert.deepEqual(describeOutcome(second).map((line) => line.replace(/\/dev\/loop\d+/, "/dev/loopN").replace(gpt, "GPT")),
        ["Attached the whole image GPT at /dev/loopN (read-only)"]);
    } finally {
      detachAll(gpt);
    }
  });

  test("failures exit non-zero with one line and leave no loop device behind", async () => {
    const missing = await cli([join(dir, "nope.raw")]);
    assert.deepEqual([missing.code, missing.stderr], [1, `netimport attach: ${join(dir, "nope.raw")} does not exist\n`]);

    const noSuch = await cli([gpt, "--partition=7"]);
    assert.equal(noSuch.code, 1);
    assert.match(noSuch.stderr, /^netimport attach: .* has no partition 7 \(it has 1, 2\)\n$/);

    const corrupt = join(dir, "corrupt.raw");
    copyImage(gpt, corrupt);
    images.push(corrupt);
    corruptByte(corrupt, 512 + 40);
    const bad = await cli([corrupt]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^netimport attach: .*corrupt\.raw: GPT header checksum mismatch .*\n$/);
    assert.deepEqual(loopsOf(corrupt), []);

    // The link cannot be made (its parent is a file): the loop device is detached again.
    const blocked = await cli([gpt, `--link=${join(gpt, "root")}`]);
    assert.equal(blocked.code, 1);
    assert.match(blocked.stderr, /^netimport attach: .*\n$/);
    assert.deepEqual(loopsOf(gpt), []);

    const usage = await cli(["--partition=boot", gpt]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--partition takes root, usr, whole or a partition number, not 'boot'/);
  });
});

describe("parseAttachArgs", () => {
  test("defaults and options", () => {
    assert.deepEqual(parseAttachArgs(["img"]), { image: "img", partition: "root", readOnly: true });
    assert.deepEqual(parseAttachArgs(["--rw", "--partition=3", "--link=/run/x", "img"]), { image: "img", partition: 3, readOnly: false, link: "/run/x" });
    assert.throws(() => parseAttachArgs([]), /missing IMAGE/);
    assert.throws(() => parseAttachArgs(["a", "b"]), /unexpected argument 'b'/);
    assert.throws(() => parseAttachArgs(["--partition=0", "a"]), /--partition takes/);
    const hash = "AB".repeat(32);
    assert.deepEqual(parseAttachArgs(["img", "--partition=root", "--link=/run/r", "--usr-link=/run/u", `--roothash=${hash}`, `--usrhash=${hash}`, "--rw"]), {
      image: "img", partition: "root", readOnly: false, link: "/run/r", usrLink: "/run/u", rootHash: hash.toLowerCase(), usrHash: hash.toLowerCase(),
    });
    assert.deepEqual(parseAttachArgs(["img", "--partition=usr", "--link=/run/u", `--usrhash=${hash}`]), { image: "img", partition: "usr", readOnly: true, link: "/run/u", usrHash: hash.toLowerCase() });
    assert.throws(() => parseAttachArgs(["img", "--roothash=abc"]), /--roothash takes a root hash in hexadecimal \(at least 32 digits\), not 'abc'/);
    assert.throws(() => parseAttachArgs(["img", "--partition=usr", `--roothash=${hash}`]), /--roothash goes with --partition=root only/);
    assert.throws(() => parseAttachArgs(["img", "--partition=usr", "--usr-link=/x"]), /--usr-link goes with --partition=root only/);
    assert.throws(() => parseAttachArgs(["img", `--usrhash=${hash}`]), /--usrhash goes with --partition=usr, or with --usr-link/);
    assert.throws(() => parseAttachArgs(["img", "--usr-link="]), /--usr-link needs a path/);
  });
  test("util.parseArgs: both value forms, --, flags without values, last of --ro/--rw wins", () => {
    assert.deepEqual(parseAttachArgs(["--link", "/run/x", "--partition", "usr", "img"]), { image: "img", partition: "usr", readOnly: true, link: "/run/x" });
    assert.equal((parseAttachArgs(["img", "--ro", "--rw"]) as { readOnly: boolean }).readOnly, false);
    assert.equal((parseAttachArgs(["img", "--rw", "--ro"]) as { readOnly: boolean }).readOnly, true);
    assert.deepEqual(parseAttachArgs(["--", "-img"]), { image: "-img", partition: "root", readOnly: true });
    assert.equal(parseAttachArgs(["-h"]), "help");
    assert.equal(parseAttachArgs(["img", "--help"]), "help");
    const usage = (args: string[], message: string): void => {
      assert.throws(() => parseAttachArgs(args), (error: Error) => {
        assert.equal(error.name, "UsageError");
        assert.equal(error.message, message);
        return true;
      });
    };
    usage(["img", "--rw=1"], "--rw takes no value");
    usage(["img", "--link"], "--link needs a value");
    usage(["img", "--link", "--rw"], '--link needs a value (to give "--rw", write --link=--rw)');
    usage(["--bogus=1", "img"], "unknown option '--bogus'");
    usage(["-x", "img"], "unknown option '-x'");
    usage(["img", "--partition=usr", "--usr-link=/x"], "--usr-link goes with --partition=root only");
  });
});

describe("linkAtomically", () => {
  test("creates parents and replaces an existing link", async () => {
    const link = join(dir, "links/deep/root");
    await linkAtomically("/dev/loop100", link);
    await linkAtomically("/dev/loop101", link);
    assert.ok(lstatSync(link).isSymbolicLink());
    assert.equal(readlinkSync(link), "/dev/loop101");
  });
});
