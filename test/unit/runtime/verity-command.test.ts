// `netimport attach` then `netimport verity` on DDIs, as the generated units run them, with real loop and
// device-mapper devices (we are root). Tests that create a dm-verity device need a kernel with dm-mod and
// dm-verity; on one without device-mapper they are skipped, while every failure that must stop before
// dmsetup still runs. Every dm and loop device is removed in after(), even when a test fails.
import assert from "node:assert/strict";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseVerityArgs } from "../../../runtime/verity-command.ts";
import { corruptByte, detachAll, loopsOf } from "./disk-fixtures.ts";
import { makeDdi, makeSigner, makeVerityParts, sign, signatureJson, verityPartSpecs, type BuiltPart, type Signer, type VerityDdiParts } from "./ddi-fixtures.ts";

const main = fileURLToPath(new URL("../../../runtime/main.ts", import.meta.url));
const deviceMapper = spawnSync("dmsetup", ["version"]).status === 0;
const needsDm = { skip: process.arch !== "x64" ? "x86-64 partition types" : deviceMapper ? false : "this kernel has no device-mapper (dm-mod, dm-verity)" };
const x64 = { skip: process.arch !== "x64" ? "x86-64 partition types" : false };

let dir: string;
let certificates: string;
let signer: Signer;
let stranger: Signer;
let root: VerityDdiParts;
let rootB: VerityDdiParts;
let usr: VerityDdiParts;
const images: string[] = [];
const names: string[] = [];
let counter = 0;

/** A device-mapper name of this run, removed in after(). */
function dmName(what: string): string {
  const name = `nitest-${process.pid}-${counter++}-${what}`;
  names.push(name);
  return name;
}

function run(command: "attach" | "verity", argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [main, command, ...argv], { encoding: "utf8" }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

function image(name: string, parts: Parameters<typeof makeDdi>[1]): { path: string; parts: BuiltPart[] } {
  const path = join(dir, name);
  images.push(path);
  return { path, parts: makeDdi(path, parts) };
}

/** Attaches `path` as the generator's attach unit does; returns LINK. */
async function attach(path: string, name: string, extra: string[] = []): Promise<string> {
  const link = join(dir, name, "root");
  const result = await run("attach", [path, "--partition=root", `--link=${link}`, ...extra]);
  assert.equal(result.stderr, "");
  assert.equal(result.code, 0);
  return link;
}

const verityArgs = (name: string, link: string, extra: string[] = []) => [
  name, `--data=${link}.data`, `--hash=${link}.hash`, `--signature=${link}.verity-sig`, `--link=${link}`, `--certificates-dir=${certificates}`, ...extra,
];

const dmExists = (name: string) => spawnSync("dmsetup", ["info", name]).status === 0;
const dmList = () => (deviceMapper ? execFileSync("dmsetup", ["ls"], { encoding: "utf8" }) : "");

/** The first `length` bytes of a block device. */
function readDevice(path: string, length: number, offset = 0): Buffer {
  const fd = openSync(path, "r");
  try {
    const buffer = Buffer.alloc(length);
    const n = readSync(fd, buffer, 0, length, offset);
    return buffer.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** Checks that a failed verity step left nothing: no device NAME, no LINK, only the attach's two loops. */
function assertNothingLeft(name: string, link: string, imagePath: string): void {
  assert.equal(existsSync(`/dev/mapper/${name}`), false);
  const dmNames = readdirSync("/sys/block").filter((d) => d.startsWith("dm-")).map((d) => readFileSync(`/sys/block/${d}/dm/name`, "utf8").trim());
  assert.ok(!dmNames.includes(name), `no ${name} in /sys/block`);
  assert.doesNotMatch(dmList(), new RegExp(name));
  assert.equal(existsSync(link), false);
  assert.equal(loopsOf(imagePath).length, 2, "only the data and hash loop devices of the attach");
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), "netimport-verity-"));
  signer = makeSigner(join(dir, "keys"), "os signing key");
  stranger = makeSigner(join(dir, "keys"), "stranger");
  certificates = join(dir, "verity.d");
  mkdirSync(certificates);
  writeFileSync(join(certificates, "os.crt"), readFileSync(signer.cert));
  root = makeVerityParts(dir, "root", { "os-release": "ID=verity-root\n" }, { signer });
  rootB = makeVerityParts(dir, "root-b", { "os-release": "ID=verity-root-b\n" });
  usr = makeVerityParts(dir, "usr", { "usr-release": "ID=verity-usr\n" }, { signer, kind: "squashfs" });
});
after(() => {
  for (const name of names) {
    spawnSync("dmsetup", ["remove", "--retry", name]);
    spawnSync("dmsetup", ["mknodes", name]); // removes the node libdevmapper leaves without udev
  }
  for (const path of images) detachAll(path);
  rmSync(dir, { recursive: true, force: true });
});

describe("netimport verity", () => {
  test("root + verity + signature: a verified read-only device with the file system's bytes, LINK pointing at it", needsDm, async () => {
    const { path } = image("signed.raw", verityPartSpecs("root", root));
    const link = await attach(path, "signed");
    const name = dmName("root");
    const { code, stdout, stderr } = await run("verity", verityArgs(name, link));
    assert.equal(stderr, "");
    assert.equal(code, 0);
    assert.equal(stdout, `Set up dm-verity device ${name} (sha256, root hash ${root.rootHash.slice(0, 4)}…${root.rootHash.slice(-2)} from the signed verity-sig partition, certificate CN=os signing key, O=netimport tests (${join(certificates, "os.crt")})) over ${link}.data, linked at ${link}\n`);
    assert.equal(readlinkSync(link), `/dev/mapper/${name}`);
    assert.equal(execFileSync("blockdev", ["--getro", link], { encoding: "utf8" }).trim(), "1");
    const fs = readFileSync(root.data);
    assert.ok(readDevice(link, fs.length).equals(fs), "the verity device reads as the file system image");
    const table = execFileSync("dmsetup", ["table", name], { encoding: "utf8" });
    assert.match(table, new RegExp(`^0 ${fs.length / 512} verity 1 7:\\d+ 7:\\d+ 4096 4096 ${fs.length / 4096} 1 sha256 ${root.rootHash} [0-9a-f]{64}\\n$`));
    // The file system mounts and holds what was put in.
    const mnt = join(dir, "mnt");
    mkdirSync(mnt, { recursive: true });
    execFileSync("mount", ["-t", "erofs", "-o", "ro", link, mnt]);
    try {
      assert.equal(readFileSync(join(mnt, "os-release"), "utf8"), "ID=verity-root\n");
    } finally {
      execFileSync("umount", [mnt]);
    }
  });

  test("a corrupted data block reads as an I/O error through the verity device; the others read", needsDm, async () => {
    const { path, parts } = image("corrupt.raw", verityPartSpecs("root", root));
    const blocks = readFileSync(root.data).length / 4096;
    const bad = blocks - 2; // inside the random file
    corruptByte(path, parts[0]!.offset + bad * 4096 + 100);
    const link = await attach(path, "corrupt");
    const name = dmName("corrupt");
    assert.equal((await run("verity", verityArgs(name, link))).code, 0, "the tree is intact; only data reads are checked");
    assert.equal(readDevice(link, 4096).length, 4096);
    assert.throws(() => readDevice(link, 4096, bad * 4096), (e: NodeJS.ErrnoException) => e.code === "EIO");
    const dd = spawnSync("dd", [`if=${link}`, "of=/dev/null", "bs=4096", `skip=${bad}`, "count=1", "iflag=direct"], { encoding: "utf8" });
    assert.notEqual(dd.status, 0);
    assert.match(dd.stderr, /Input\/output error/);
  });

  test("a /usr-only image (--partition=usr): its own device", needsDm, async () => {
    const { path } = image("usr-only.raw", verityPartSpecs("usr", usr));
    const link = join(dir, "usr-only", "usr");
    assert.equal((await run("attach", [path, "--partition=usr", `--link=${link}`])).code, 0);
    const name = dmName("usr");
    const { code, stdout } = await run("verity", verityArgs(name, link));
    assert.equal(code, 0);
    assert.match(stdout, new RegExp(`^Set up dm-verity device ${name} \\(sha256, root hash .* from the signed verity-sig partition`));
    const fs = readFileSync(usr.data);
    assert.ok(readDevice(link, fs.length).equals(fs));
  });

  test("root and /usr, both with verity: two devices (/usr by its usrhash, root by its signature)", needsDm, async () => {
    const unsignedUsr = { ...usr, json: undefined };
    const { path } = image("root-usr.raw", [...verityPartSpecs("root", root), ...verityPartSpecs("usr", unsignedUsr)]);
    const link = await attach(path, "root-usr", [`--usr-link=${join(dir, "root-usr", "usr")}`, `--usrhash=${usr.rootHash}`]);
    const usrLink = join(dir, "root-usr", "usr");
    const rootName = dmName("root");
    const usrName = dmName("usr");
    assert.equal((await run("verity", verityArgs(rootName, link))).code, 0);
    const usrRun = await run("verity", [...verityArgs(usrName, usrLink), `--roothash=${usr.rootHash}`]);
    assert.equal(usrRun.code, 0);
    assert.match(usrRun.stdout, /root hash [0-9a-f]{4}…[0-9a-f]{2} given\) over/);
    assert.ok(readDevice(link, 4096).equals(readFileSync(root.data).subarray(0, 4096)));
    assert.ok(readDevice(usrLink, 4096).equals(readFileSync(usr.data).subarray(0, 4096)));
  });

  test("--roothash pairs two root partitions by UUID and wins over the signature file, which is not read", needsDm, async () => {
    const { path } = image("ab.raw", [...verityPartSpecs("root", root, "root-a"), ...verityPartSpecs("root", rootB, "root-b")]);
    const link = await attach(path, "ab", [`--roothash=${rootB.rootHash}`]);
    writeFileSync(`${link}.verity-sig`, "not even JSON");
    const name = dmName("b");
    const { code, stdout, stderr } = await run("verity", verityArgs(name, link, [`--roothash=${rootB.rootHash}`]));
    assert.equal(stderr, "");
    assert.equal(code, 0);
    assert.match(stdout, /root hash .* given\) over/);
    const fs = readFileSync(rootB.data);
    assert.ok(readDevice(link, fs.length).equals(fs), "the device shows root-b");
  });

  test("a device name in use is refused and left alone; a link that cannot be made removes the device again", needsDm, async () => {
    const { path } = image("busy.raw", verityPartSpecs("root", root));
    const link = await attach(path, "busy");
    const name = dmName("busy");
    assert.equal((await run("verity", verityArgs(name, link))).code, 0);
    const withLink = (dmName: string, target: string) => [
      dmName, `--data=${link}.data`, `--hash=${link}.hash`, `--signature=${link}.verity-sig`, `--link=${target}`, `--certificates-dir=${certificates}`,
    ];
    const again = await run("verity", withLink(name, join(dir, "busy", "other")));
    assert.deepEqual([again.code, again.stderr], [1, `netimport verity: a device-mapper device named ${name} already exists\n`]);
    assert.ok(dmExists(name), "the existing device is untouched");
    const other = dmName("blocked");
    const blocked = await run("verity", withLink(other, join(path, "in-a-file")));
    assert.equal(blocked.code, 1);
    assert.match(blocked.stderr, /^netimport verity: .*\n$/);
    assert.equal(dmExists(other), false, "the device made before the link failed is removed");
    assert.equal(existsSync(`/dev/mapper/${other}`), false, "and its node");
  });

  describe("refused before any device is made", x64, () => {
    let path: string;
    let link: string;
    before(async () => {
      path = image("refusals.raw", verityPartSpecs("root", root)).path;
      link = await attach(path, "refusals");
    });
    const refuse = async (json: string | undefined, message: RegExp, extra: string[] = []) => {
      if (json === undefined) rmSync(`${link}.verity-sig`, { force: true });
      else writeFileSync(`${link}.verity-sig`, json);
      const name = dmName("refused");
      const { code, stdout, stderr } = await run("verity", verityArgs(name, link, extra));
      assert.equal(stdout, "");
      assert.equal(code, 1);
      assert.match(stderr, message);
      assert.equal(stderr.split("\n").length, 2, "one line");
      assertNothingLeft(name, link, path);
    };

    test("a signature over another root hash", async () => {
      const other = rootB.rootHash;
      await refuse(signatureJson(root.rootHash, signer, sign(signer, other)),
        /^netimport verity: the signature of root hash [0-9a-f]{64} \(.*\) does not verify: the signature by CN=os signing key, O=netimport tests \(.*os\.crt\) does not verify; certificates tried: .*os\.crt \(CN=os signing key, O=netimport tests\)\n$/);
    });

    test("a signature by a certificate that is not in verity.d", async () => {
      await refuse(signatureJson(root.rootHash, stranger, sign(stranger, root.rootHash)),
        /^netimport verity: the signature of root hash .* does not verify: the signer \(issuer "CN=stranger, O=netimport tests", serial [0-9a-f]+\) is none of the trusted certificates; certificates tried: .*os\.crt \(CN=os signing key, O=netimport tests\); it names the certificate with SHA-256 fingerprint [0-9a-f]{64}, which is not among them\n$/);
    });

    test("a tampered rootHash in the JSON", async () => {
      const json = JSON.parse(root.json!) as { rootHash: string };
      json.rootHash = rootB.rootHash;
      await refuse(JSON.stringify(json), new RegExp(`^netimport verity: the signature of root hash ${rootB.rootHash} .* does not verify: the signature by CN=os signing key`));
    });

    test("a verity partition but no root hash and no signature", async () => {
      await refuse(undefined, new RegExp(`^netimport verity: ${link}\\.data has a verity partition but no root hash: give roothash= \\(usrhash= for /usr\\) on the kernel command line, or sign it \\(verity-sig partition\\) with a certificate in ${certificates}\\n$`));
    });

    test("a root hash of the wrong size, and a hash device without a superblock", async () => {
      await refuse(root.json, /^netimport verity: root hash 'abcd' is not 64 hexadecimal digits, the size of a sha256 digest\n$/, ["--roothash=abcd"]);
      const name = dmName("nosb");
      const noSb = await run("verity", [name, `--data=${link}.data`, `--hash=${link}.data`, `--link=${link}`, `--roothash=${root.rootHash}`]);
      assert.deepEqual([noSb.code, noSb.stderr], [1, `netimport verity: hash device ${link}.data has no verity superblock (made by veritysetup format) at its start\n`]);
      assertNothingLeft(name, link, path);
    });

    test("a data device smaller than its hash tree covers", async () => {
      const big = makeVerityParts(dir, "big", { "os-release": "ID=big\n" }, { noise: 2 * 1024 * 1024 });
      const built = image("big.raw", verityPartSpecs("root", big));
      const bigLink = await attach(built.path, "big");
      const name = dmName("small");
      // The hash partition (1 MiB) as the data device of a 2 MiB file system's tree.
      const small = await run("verity", [name, `--data=${bigLink}.hash`, `--hash=${bigLink}.hash`, `--link=${bigLink}`, `--roothash=${big.rootHash}`]);
      const covered = readFileSync(big.data).length;
      assert.deepEqual([small.code, small.stderr], [1, `netimport verity: data device ${bigLink}.hash holds ${1024 * 1024} bytes, but its hash tree covers ${covered}\n`]);
      assertNothingLeft(name, bigLink, built.path);
    });

    test("data or hash that is no block device", async () => {
      const name = dmName("nodev");
      const missing = await run("verity", [name, `--data=${join(dir, "nope")}`, `--hash=${link}.hash`, `--link=${link}`]);
      assert.deepEqual([missing.code, missing.stderr], [1, `netimport verity: data device ${join(dir, "nope")} does not exist\n`]);
      const file = await run("verity", [name, `--data=${link}.hash`, `--hash=${root.hash}`, `--link=${link}`]);
      assert.deepEqual([file.code, file.stderr], [1, `netimport verity: hash device ${root.hash} is not a block device\n`]);
    });
  });

  test("usage errors exit 2", async () => {
    const usage = await run("verity", ["--data=/x", "--hash=/y", "--link=/z"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^netimport verity: missing NAME\nUsage: netimport verity NAME/);
    assert.throws(() => parseVerityArgs(["a/b", "--data=/x", "--hash=/y", "--link=/z"]), /'a\/b' is not a device-mapper name/);
    assert.throws(() => parseVerityArgs(["n", "--data=/x", "--link=/z"]), /missing --hash=PATH/);
    assert.throws(() => parseVerityArgs(["n", "--data=/x", "--hash=/y", "--link=/z", "--roothash=xyz"]), /--roothash takes a root hash in hexadecimal, not 'xyz'/);
    assert.throws(() => parseVerityArgs(["n", "--data=/x", "--hash=/y", "--link=/z", "--bogus"]), /unknown option '--bogus'/);
    assert.deepEqual(parseVerityArgs(["n", "--data=/x", "--hash=/y", "--link=/z", "--signature=/s", "--roothash=AB", "--certificates-dir=/c1", "--certificates-dir=/c2"]), {
      name: "n", data: "/x", hash: "/y", link: "/z", signature: "/s", rootHash: "ab", certificateDirs: ["/c1", "/c2"],
    });
    assert.deepEqual(parseVerityArgs(["--data", "/x", "--hash", "/y", "n", "--link", "/z", "--certificates-dir", "/c"]), {
      name: "n", data: "/x", hash: "/y", link: "/z", certificateDirs: ["/c"],
    });
    assert.equal(parseVerityArgs(["-h"]), "help");
    assert.deepEqual(parseVerityArgs(["--data=/x", "--hash=/y", "--link=/z", "--", "n"]), { name: "n", data: "/x", hash: "/y", link: "/z" });
    const refused = (args: string[], message: string): void => {
      assert.throws(() => parseVerityArgs(args), (error: Error) => {
        assert.equal(error.name, "UsageError");
        assert.equal(error.message, message);
        return true;
      });
    };
    refused(["n", "--data=/x", "--hash=/y", "--link"], "--link needs a value");
    refused(["n", "--data=", "--hash=/y", "--link=/z"], "--data needs a value");
    refused(["n", "--data", "--hash=/y", "--link=/z"], '--data needs a value (to give "--hash=/y", write --data=--hash=/y)');
    refused(["n", "--help=1"], "--help takes no value");
    refused(["n", "m", "--data=/x"], "unexpected argument 'm'");
    refused(["a/b", "--data=/x", "--hash=/y", "--link=/z"], "'a/b' is not a device-mapper name: use up to 127 letters, digits and . _ + : @ = -");
    refused(["--data=/x", "--hash=/y", "--link=/z", "--", "-n"], "'-n' is not a device-mapper name: use up to 127 letters, digits and . _ + : @ = -");
  });
});


