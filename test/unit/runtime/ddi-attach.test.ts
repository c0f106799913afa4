// `netimport attach` on DDIs, with real loop devices (we are root): root and /usr partitions with their
// verity and signature partitions, as the generator's command lines ask for them. Every loop device a test
// attaches is detached in after(), even when it fails.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { detachAll, loopsOf } from "./disk-fixtures.ts";
import { makeDdi, makeFs, makeSigner, makeTree, makeVerityParts, padded, uuidsOf, verityPartSpecs, X64, type BuiltPart, type VerityDdiParts } from "./ddi-fixtures.ts";

const main = fileURLToPath(new URL("../../../runtime/main.ts", import.meta.url));
const x64 = { skip: process.arch !== "x64" ? "the fixtures use x86-64 partition types" : false };

let dir: string;
const images: string[] = [];
let root: VerityDdiParts; // erofs, signed
let usr: VerityDdiParts; // squashfs, unsigned
let usrSigned: VerityDdiParts;
let rootB: VerityDdiParts; // a second root, unsigned

function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [main, "attach", ...argv], { encoding: "utf8" }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

function image(name: string, parts: Parameters<typeof makeDdi>[1]): { path: string; parts: BuiltPart[] } {
  const path = join(dir, name);
  images.push(path);
  return { path, parts: makeDdi(path, parts) };
}

const getro = (device: string) => execFileSync("blockdev", ["--getro", device], { encoding: "utf8" }).trim();
const sysLoop = (device: string, file: string) => readFileSync(`/sys/block/${basename(device)}/loop/${file}`, "utf8").trim();
const head = (path: string, length: number) => {
  const buffer = Buffer.alloc(length);
  const fd = execFileSync("dd", [`if=${path}`, "bs=4096", `count=${Math.ceil(length / 4096)}`, "status=none"]);
  fd.copy(buffer);
  return buffer;
};

before(() => {
  dir = mkdtempSync(join(tmpdir(), "netimport-ddi-"));
  const signer = makeSigner(join(dir, "keys"), "os signing key");
  root = makeVerityParts(dir, "root", { "os-release": "ID=ddi-root\n" }, { signer });
  rootB = makeVerityParts(dir, "root-b", { "os-release": "ID=ddi-root-b\n" });
  usr = makeVerityParts(dir, "usr", { "usr-release": "ID=ddi-usr\n" }, { kind: "squashfs" });
  usrSigned = makeVerityParts(dir, "usr-signed", { "usr-release": "ID=ddi-usr-only\n" }, { signer, kind: "ext4" });
});
after(() => {
  for (const path of images) detachAll(path);
  rmSync(dir, { recursive: true, force: true });
});

describe("netimport attach: DDIs", x64, () => {
  test("root + verity + signature: data and hash tree attached read-only, the signature copied, LINK left to verity", async () => {
    const { path, parts } = image("signed.raw", [{ type: X64.esp, name: "esp", mib: 1 }, ...verityPartSpecs("root", root)]);
    const link = join(dir, "signed/root");
    const { code, stdout, stderr } = await cli([path, "--partition=root", `--link=${link}`, "--rw"]);
    assert.equal(stderr, "");
    assert.equal(code, 0);
    const data = readlinkSync(`${link}.data`);
    const hash = readlinkSync(`${link}.hash`);
    assert.equal(stdout, [
      `Attached root partition 2 "root-x86-64" (erofs) of ${path} at ${data} (read-only: verity), data linked at ${link}.data`,
      `Attached root-verity partition 3 "root-x86-64-verity" (DM_verity_hash) of ${path} at ${hash} (read-only), hash tree linked at ${link}.hash`,
      `Copied root-verity-sig partition 4 "root-x86-64-verity-sig" of ${path} (root hash ${root.rootHash}) to ${link}.verity-sig`,
      "",
    ].join("\n"));
    assert.equal(existsSync(link), false, "LINK is made by netimport verity");
    assert.deepEqual(JSON.parse(readFileSync(`${link}.verity-sig`, "utf8")), JSON.parse(root.json!));
    assert.deepEqual([getro(data), getro(hash)], ["1", "1"]);
    assert.deepEqual([Number(sysLoop(data, "offset")), Number(sysLoop(hash, "offset"))], [parts[1]!.offset, parts[2]!.offset]);
    assert.ok(head(data, 4096).equals(readFileSync(root.data).subarray(0, 4096)), "the data loop device shows the file system");
    assert.equal(head(hash, 8).toString("latin1"), "verity\0\0");
    detachAll(path);
  });

  test("a /usr-only image: --partition=usr attaches /usr with its verity; --partition=root refuses it and points to root=tmpfs", async () => {
    const { path } = image("usr-only.raw", verityPartSpecs("usr", usrSigned));
    const refused = await cli([path, "--partition=root", `--link=${join(dir, "usr-only/root")}`]);
    assert.deepEqual([refused.code, refused.stderr], [1,
      `netimport attach: ${path} has a /usr partition but no root partition: boot it with root=tmpfs, which mounts /usr from the image on a tmpfs root, as systemd does\n`]);
    assert.deepEqual(loopsOf(path), []);
    const link = join(dir, "usr-only/usr");
    const { code, stdout } = await cli([path, "--partition=usr", `--link=${link}`]);
    assert.equal(code, 0);
    const lines = stdout.trim().split("\n");
    assert.match(lines[0]!, new RegExp(`^Attached usr partition 1 "usr-x86-64" \\(ext4\\) of .* at /dev/loop\\d+ \\(read-only: verity\\), data linked at ${link}\\.data$`));
    assert.match(lines[1]!, /^Attached usr-verity partition 2 .* hash tree linked at .*usr\.hash$/);
    assert.match(lines[2]!, /^Copied usr-verity-sig partition 3 /);
    assert.equal(loopsOf(path).length, 2);
    detachAll(path);
  });

  test("a /usr-only image with --tmpfs-root: an empty tmpfs becomes its root (as root=tmpfs), /usr is attached", async () => {
    const { path } = image("usr-only-auto.raw", verityPartSpecs("usr", usrSigned));
    const sysroot = join(dir, "usr-only-auto/sysroot");
    mkdirSync(sysroot, { recursive: true });
    const usrLink = join(dir, "usr-only-auto/usr");
    try {
      const { code, stdout, stderr } = await cli([path, "--partition=root", `--link=${join(dir, "usr-only-auto/root")}`, `--usr-link=${usrLink}`, `--tmpfs-root=${sysroot}`]);
      assert.equal(stderr, "");
      assert.equal(code, 0);
      const lines = stdout.trim().split("\n");
      assert.equal(lines[0], `${path} has /usr but no root partition: mounted an empty tmpfs at ${sysroot} as its root, as root=tmpfs does`);
      assert.match(lines[1]!, /^Attached usr partition 1 "usr-x86-64" \(ext4\) .* data linked at .*usr\.data$/);
      const mount = execFileSync("findmnt", ["-no", "FSTYPE,OPTIONS", sysroot], { encoding: "utf8" });
      assert.match(mount, /^tmpfs\s+rw,.*mode=755/);
      assert.equal(existsSync(join(dir, "usr-only-auto/root")), false, "no root device link");
      assert.equal(loopsOf(path).length, 2);
    } finally {
      execFileSync("umount", [sysroot], { stdio: "ignore" });
      detachAll(path);
    }
    // Not without the /usr link to give /usr to.
    const usage = await cli([path, "--partition=root", `--tmpfs-root=${sysroot}`]);
    assert.equal(usage.code, 2);
  });

  test("--partition=usr on an image without /usr fails in one line and attaches nothing", async () => {
    const { path } = image("root-only.raw", verityPartSpecs("root", root));
    const { code, stderr } = await cli([path, "--partition=usr", `--link=${join(dir, "x/usr")}`]);
    assert.deepEqual([code, stderr], [1, `netimport attach: ${path} has no /usr partition for x64 (type ${X64.usr})\n`]);
    assert.deepEqual(loopsOf(path), []);
  });

  test("root and /usr, both with verity: --usr-link attaches /usr too, its hash paired by --usrhash", async () => {
    const { path, parts } = image("root-usr.raw", [...verityPartSpecs("root", root), ...verityPartSpecs("usr", usr)]);
    const link = join(dir, "root-usr/root");
    const usrLink = join(dir, "root-usr/usr");
    const { code, stdout, stderr } = await cli([path, "--partition=root", `--link=${link}`, `--usr-link=${usrLink}`, `--usrhash=${usr.rootHash}`]);
    assert.equal(stderr, "");
    assert.equal(code, 0);
    const lines = stdout.trim().split("\n");
    assert.equal(lines.length, 5);
    assert.match(lines[3]!, new RegExp(`^Attached usr partition 4 "usr-x86-64" \\(squashfs\\) of .* \\(read-only: verity\\), data linked at ${usrLink}\\.data$`));
    assert.match(lines[4]!, new RegExp(`hash tree linked at ${usrLink}\\.hash$`));
    assert.equal(Number(sysLoop(readlinkSync(`${usrLink}.data`), "offset")), parts[3]!.offset);
    assert.equal(existsSync(`${usrLink}.verity-sig`), false, "/usr is not signed");
    assert.equal(existsSync(`${link}.verity-sig`), true);
    detachAll(path);
  });

  test("two root partitions: --roothash picks the one its UUID names (and the signature of the other is not copied)", async () => {
    const { path, parts } = image("ab.raw", [...verityPartSpecs("root", root, "root-a"), ...verityPartSpecs("root", rootB, "root-b")]);
    const link = join(dir, "ab/root");
    const { code, stdout } = await cli([path, `--link=${link}`, `--roothash=${rootB.rootHash}`]);
    assert.equal(code, 0);
    const data = readlinkSync(`${link}.data`);
    assert.equal(Number(sysLoop(data, "offset")), parts[3]!.offset);
    assert.equal(parts[3]!.uuid, uuidsOf(rootB.rootHash).data);
    assert.equal(Number(sysLoop(readlinkSync(`${link}.hash`), "offset")), parts[4]!.offset);
    assert.match(stdout, /root partition 4 "root-b" \(erofs\) .* data linked at .*; of 2 root partitions, the one the root hash names\n/);
    assert.equal(existsSync(`${link}.verity-sig`), false);
    detachAll(path);
    // Without --roothash, the signature partition names root-a.
    const signed = await cli([path, `--link=${link}`]);
    assert.equal(signed.code, 0);
    assert.equal(Number(sysLoop(readlinkSync(`${link}.data`), "offset")), parts[0]!.offset);
    assert.match(signed.stdout, /Copied root-verity-sig partition 3 "root-a-verity-sig"/);
    detachAll(path);
  });

  test("a verity partition without signature or hash: attached, for the verity step to refuse", async () => {
    const { path } = image("unsigned.raw", verityPartSpecs("root", rootB));
    const link = join(dir, "unsigned/root");
    mkdirSync(dirname(link), { recursive: true });
    writeFileSync(`${link}.verity-sig`, "stale");
    const { code } = await cli([path, `--link=${link}`]);
    assert.equal(code, 0);
    assert.ok(existsSync(`${link}.data`) && existsSync(`${link}.hash`));
    assert.equal(existsSync(`${link}.verity-sig`), false, "a stale signature file is removed");
    detachAll(path);
  });

  test("--roothash but no verity partition: refused, nothing attached", async () => {
    const tree = makeTree(join(dir, "plain.tree"), { "os-release": "ID=plain\n" }, 0);
    const fs = makeFs(join(dir, "plain.erofs"), tree, "erofs");
    const { path } = image("no-verity.raw", [{ type: X64.root, name: "root-x86-64", contents: fs }]);
    const { code, stderr } = await cli([path, `--link=${join(dir, "nv/root")}`, `--roothash=${root.rootHash}`]);
    assert.deepEqual([code, stderr], [1, "netimport attach: roothash= was given, but the image has no root-verity partition for root partition 1\n"]);
    assert.deepEqual(loopsOf(path), []);
    // Without --roothash it is attached as before, and stale .hash/.data links of an earlier DDI go away.
    const link = join(dir, "nv/root");
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync("/dev/null", `${link}.hash`);
    const plain = await cli([path, `--link=${link}`, "--rw"]);
    assert.equal(plain.code, 0);
    assert.match(plain.stdout, /^Attached root partition 1 "root-x86-64" \(erofs\) of .* \(read-write\), linked at .*nv\/root\n$/);
    assert.equal(existsSync(`${link}.hash`), false);
    detachAll(path);
  });

  test("--roothash on an image without GPT: refused", async () => {
    const fs = join(dir, "plain.erofs");
    images.push(fs);
    const { code, stderr } = await cli([fs, `--roothash=${root.rootHash}`]);
    assert.deepEqual([code, stderr], [1, `netimport attach: --roothash was given, but ${fs} has no GPT partition table, so no verity partition\n`]);
  });

  test("the GPT read-only flag keeps a partition read-only; no-auto partitions are not discovered", async () => {
    const fs = join(dir, "plain.erofs");
    const { path } = image("flags.raw", [
      { type: X64.root, name: "hidden", contents: fs, attrs: [63] },
      { type: X64.root, name: "flagged", contents: fs, attrs: [60] },
    ]);
    const { code, stdout } = await cli([path, `--link=${join(dir, "flags/root")}`, "--rw"]);
    assert.equal(code, 0);
    assert.match(stdout, /^Attached root partition 2 "flagged" .* \(read-only: GPT read-only flag\), linked at /);
    detachAll(path);
  });

  test("a broken signature partition, or a link that cannot be made half-way: one line, nothing left behind", async () => {
    const broken = image("broken-sig.raw", [...verityPartSpecs("root", { ...root, json: undefined }), { type: X64.rootVeritySig, name: "sig", contents: padded("{not json") }]);
    const bad = await cli([broken.path, `--link=${join(dir, "broken/root")}`]);
    assert.deepEqual([bad.code, bad.stderr], [1, `netimport attach: the root-verity-sig partition 3 of ${broken.path} does not hold a JSON object\n`]);
    assert.deepEqual(loopsOf(broken.path), []);

    const { path } = image("blocked.raw", verityPartSpecs("root", root));
    const link = join(dir, "blocked/root");
    mkdirSync(`${link}.hash/in-the-way`, { recursive: true });
    const blocked = await cli([path, `--link=${link}`]);
    assert.equal(blocked.code, 1);
    assert.match(blocked.stderr, /^netimport attach: EISDIR: illegal operation on a directory, rename .*blocked\/root\.hash'\n$/);
    assert.deepEqual(loopsOf(path), [], "the data loop device attached before is detached again");
    assert.equal(existsSync(`${link}.data`), false, "and its link removed");
  });
});

function dirname(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}
