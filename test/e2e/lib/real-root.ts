// A real operating system for the boot tests: Debian trixie with systemd as PID 1 (mmdebstrap minbase),
// served as an ext4 `.raw.zst` (and uncompressed `.raw`), as a `.tar.zst`, and as two systemd DDIs made by
// trixie's systemd-repart: a root partition (ext4) with dm-verity and a signed verity-sig partition (also
// uncompressed, as a lazy root is served, and as a copy with one byte of a file's data block flipped), and
// a /usr-only image (/usr as squashfs, usr-verity, usr-verity-sig) booted with root=tmpfs. A probe service
// in it reports, on the serial console, what a user would check once the system is up (`systemctl
// is-system-running`, the root's mount options, a setuid-root program run by an unprivileged user, a file
// capability, an ACL and an xattr, what the pull left on the image, whether a file reads back whole
// through dm-verity, how far a lazy root's copy has come), then powers the machine off, so a scenario also
// sees whether shutdown ends in the kernel's power-down. Everything the probe needs lives below /usr, so
// that the /usr-only image carries it too; its /etc comes from /usr/share/factory/etc through tmpfiles.
import {
  closeSync, cpSync, existsSync, linkSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync,
  writeFileSync, writeSync,
} from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureChroot, inChroot } from "./chroot.ts";
import { cacheDir, debianMirror } from "./paths.ts";
import { cacheKey, run, timed } from "./exec.ts";

/** What the root holds besides minbase: systemd as init, and the tools the probe uses. */
const packages = [
  "systemd-sysv", "udev", "dbus", "util-linux", "mount", "kmod", "iproute2", "procps",
  "iputils-ping", "libcap2-bin", "acl", "attr",
];

/** Units that would wait for a console, a network or a first-boot dialogue nobody answers in a test. */
const masked = ["getty@.service", "serial-getty@.service", "systemd-networkd-wait-online.service", "systemd-firstboot.service"];

/** Where the probe's test files live (below /usr: the /usr-only image has nothing else at first). */
const testFiles = "/usr/share/netimport-e2e";

/** A file the probe reads whole with cat: in ddi-root-corrupt.raw one byte of its first data block is flipped. */
export const canaryFile = `${testFiles}/verity-canary`;

/**
 * The canary's contents: 64 KiB of one recognisable line, repeated. ext4 stores file data verbatim, so
 * its first 4 KiB block is found in the image by scanning, and nothing else in the image looks like it.
 * @example writeFileSync(join(tree, canaryFile), canaryBytes())
 */
export function canaryBytes(): Buffer {
  return Buffer.alloc(64 * 1024, "netimport-e2e verity canary: dm-verity must refuse any changed byte\n");
}

const probe = `#!/bin/bash
# netimport boot test probe: what a user checks once the downloaded system is up, on the serial console.
out=/dev/ttyS0
say() { echo "NETIMPORT-E2E-$*" >"$out"; }
up() { cut -d' ' -f1 /proc/uptime; }
state=$(systemctl is-system-running --wait)
say "SYSTEM state=$state uptime=$(up)"
for unit in $(systemctl list-units --state=failed --plain --no-legend | cut -d' ' -f1); do say "FAILED-UNIT $unit"; done
say "ROOT $(findmnt -no SOURCE,FSTYPE,OPTIONS /)"
say "USR $(findmnt -no SOURCE,FSTYPE,OPTIONS /usr)"
say "SUID $(setpriv --reuid=65534 --regid=65534 --clear-groups /usr/local/bin/e2e-suid-id)"
say "CAPS $(getcap /usr/local/bin/e2e-cap-ping)"
say "ACL $(getfacl --omit-header --absolute-names ${testFiles}/acl | grep '^user:nobody')"
say "XATTR $(getfattr --only-values -n user.e2e ${testFiles}/xattr)"
# What the pull left on the image in the initrd's /run (moved into this system's /run at switch-root).
# A lazy root has no file there (its copy is made elsewhere, and only while it is served).
image=$(ls -d /run/machines/* 2>/dev/null | head -n 1)
if [ -n "$image" ]; then
    say "SOURCE-URL $(getfattr --absolute-names --only-values -n user.source_url "$image" 2>&1)"
else
    say "SOURCE-URL none (nothing in /run/machines)"
fi
say "VERITY $(cat /sys/block/dm-*/dm/name 2>/dev/null | tr '\\n' ' ')"
# The canary read whole: through dm-verity every block is checked, so a changed byte is an I/O error.
canary() { local error; if error=$(cat ${canaryFile} 2>&1 >/dev/null); then echo ok; else echo "\${error:-cat failed}"; fi; }
say "CANARY $(canary)"
# A lazy root (netimport_e2e.lazy=now|wait on the kernel command line): which devices each device-mapper
# device sits on (nbdN while the image is served over HTTP, loopN once the local copy took over), the
# size of /dev/nbd0 (0 once disconnected), and the root storage daemon (argv[0] @netimport…) with its RSS.
lazy=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^netimport_e2e\.lazy=//p' | tail -n 1)
on_nbd() { ls /sys/block/dm-*/slaves/ 2>/dev/null | grep -q '^nbd'; }
slaves() {
    local dm summary=""
    for dm in /sys/block/dm-*; do
        [ -e "$dm/dm/name" ] || continue
        summary="$summary,$(cat "$dm/dm/name"):$(ls "$dm/slaves" | tr '\n' '+' | sed 's/+$//')"
    done
    echo "\${summary#,}"
}
daemons() {
    local proc arg0 found=""
    for proc in /proc/[0-9]*; do
        IFS= read -r -d '' arg0 2>/dev/null <"$proc/cmdline" || continue
        case "$arg0" in @netimport*) found="$found+\${proc#/proc/}:$(sed -n 's/^VmRSS:[[:space:]]*//p' "$proc/status" | tr -d ' ')" ;; esac
    done
    echo "\${found#+}"
}
lazy_report() { say "LAZY slaves=$(slaves) nbd=$(cat /sys/block/nbd0/size 2>/dev/null || echo gone) daemon=$(daemons) uptime=$(up)"; }
if [ "$lazy" = wait ]; then
    # Until the local copy has taken over (bounded: 20 min), then the canary again, read from that copy.
    for ((i = 0; i < 1200; i++)); do on_nbd || break; sleep 1; done
    lazy_report
    sync && echo 3 >/proc/sys/vm/drop_caches
    say "CANARY-LOCAL $(canary)"
elif [ -n "$lazy" ]; then
    lazy_report
fi
say "POWEROFF uptime=$(up)"
systemctl poweroff
`;

const probeUnit = `[Unit]
Description=netimport boot test probe
After=multi-user.target

[Service]
# simple, not oneshot: is-system-running --wait waits for the boot, which would wait for a oneshot.
Type=simple
ExecStart=/usr/local/sbin/netimport-e2e-probe

[Install]
WantedBy=multi-user.target
`;

export type RealRoot = {
  /** Folder holding every served form. */
  dir: string;
  files: {
    rawZst: string; tarZst: string; ddiRootZst: string; ddiUsrZst: string;
    /** Uncompressed (sparse on disk): the ext4 root, the root DDI (a lazy root is served uncompressed: Range reads). */
    raw: string; ddiRootRaw: string;
    /** ddi-root.raw with one byte of the canary's first data block flipped (same verity partitions, same root hash). */
    ddiRootCorruptRaw: string;
  };
  /** The certificate the DDIs' verity-sig partitions are signed with (for the initrd's /etc/verity.d). */
  verityCertificate: string;
  /** A certificate nobody signed anything with (a verity-sig partition must not verify against it). */
  otherCertificate: string;
  /** Bytes: the unpacked tree, and each served file (the uncompressed ones by their length, not their blocks). */
  sizes: { tree: number; rawZst: number; tarZst: number; ddiRootZst: number; ddiUsrZst: number; raw: number; ddiRootRaw: number };
  /** The root hashes of the DDIs' verity partitions (what roothash=/usrhash= would pin). */
  rootHashes: { root: string; usr: string };
  /**
   * Where in ddi-root.raw the canary's first data block starts, the byte flipped in the corrupt copy, and
   * that block's number in the root partition (4 KiB blocks: what dm-verity names when it refuses it).
   */
  canary: { blockOffset: number; flippedOffset: number; dataBlock: number };
  /**
   * 64 KiB of ddi-root.raw (byte offset, length) in the root file system's free space, away from both
   * ends of the partition: no boot reads them, so a server slow there holds back only a lazy root's
   * background copy (which reads every byte), and the boot goes on at full speed.
   */
  unread: { offset: number; length: number };
};

/**
 * The probe and its masks, below DIR/usr: part of the real root, and an extra tree for images built
 * by others (mkosi), which then report the same way.
 */
export function writeProbe(dir: string): void {
  const units = join(dir, "usr/lib/systemd/system");
  mkdirSync(join(units, "multi-user.target.wants"), { recursive: true });
  mkdirSync(join(dir, "usr/local/sbin"), { recursive: true });
  for (const unit of masked) run("ln", ["-sf", "/dev/null", join(units, unit)]);
  writeFileSync(join(dir, "usr/local/sbin/netimport-e2e-probe"), probe, { mode: 0o755 });
  writeFileSync(join(units, "netimport-e2e-probe.service"), probeUnit);
  run("ln", ["-sf", "../netimport-e2e-probe.service", join(units, "multi-user.target.wants/")]);
}

/** Lays out the trixie root tree in DIR (mmdebstrap, then the probe, the masks and the test files). */
async function buildTree(dir: string): Promise<void> {
  await timed("mmdebstrap trixie real root", () =>
    run("mmdebstrap", ["--mode=root", "--variant=minbase", `--include=${packages.join(",")}`, "--quiet", "trixie", dir, debianMirror]));
  writeProbe(dir);
  // A setuid-root copy of id(1): run by nobody, it reports euid=0 only where setuid works.
  run("install", ["-m", "4755", "-o", "root", "-g", "root", join(dir, "usr/bin/id"), join(dir, "usr/local/bin/e2e-suid-id")]);
  // A file capability (trixie's ping relies on ping_group_range and has none of its own).
  run("install", ["-m", "0755", join(dir, "usr/bin/ping"), join(dir, "usr/local/bin/e2e-cap-ping")]);
  run("setcap", ["cap_net_raw+ep", join(dir, "usr/local/bin/e2e-cap-ping")]);
  mkdirSync(join(dir, testFiles), { recursive: true });
  writeFileSync(join(dir, testFiles, "acl"), "acl test\n");
  run("setfacl", ["-m", "u:nobody:r", join(dir, testFiles, "acl")]);
  writeFileSync(join(dir, testFiles, "xattr"), "xattr test\n");
  run("setfattr", ["-n", "user.e2e", "-v", "kept", join(dir, testFiles, "xattr")]);
  writeFileSync(join(dir, canaryFile), canaryBytes());
  writeFileSync(join(dir, "etc/hostname"), "netimport-e2e\n");
  writeFileSync(join(dir, "etc/machine-id"), `${cacheKey("netimport-e2e-machine").padEnd(32, "0")}\n`);
  // For the /usr-only image, which starts with an empty /etc: tmpfiles fills it from the factory copy.
  cpSync(join(dir, "etc"), join(dir, "usr/share/factory/etc"), { recursive: true, verbatimSymlinks: true });
  rmSync(join(dir, "usr/share/factory/etc/machine-id"));
  writeFileSync(join(dir, "usr/lib/tmpfiles.d/00-netimport-e2e-etc.conf"), "# A /usr-only boot: /etc from the factory copy.\nC /etc - - - - /usr/share/factory/etc\n");
}

/** A self-signed certificate and key (PEM) in DIR, named NAME.crt/NAME.key. */
export function certificate(dir: string, name: string): { crt: string; key: string } {
  const crt = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "3650", "-subj", `/CN=${name}`],
    { stdio: ["ignore", "pipe", "pipe"] });
  return { crt, key };
}

/**
 * Partition definitions for systemd-repart: a data partition with its verity and signature partitions.
 * ROOT_BYTES: a root partition of exactly that size instead of the smallest that holds the tree.
 */
function verityDefinitions(defs: string, part: "root" | "usr", rootBytes?: number): void {
  mkdirSync(defs, { recursive: true });
  const copy = part === "root" ? "CopyFiles=/" : "CopyFiles=/usr:/";
  // The file systems DDIs use (the mkosi images are erofs): ext4 for the root, squashfs for /usr.
  // ext4 is not read-only by design, so repart can only guess its minimal size ("at least as big as
  // required": with SizeMin/MaxBytes the size given; Minimize= stays on, as the hash partition's needs it).
  const rootSize = rootBytes === undefined ? "Minimize=guess" : `Minimize=guess\nSizeMinBytes=${rootBytes}\nSizeMaxBytes=${rootBytes}`;
  const format = part === "root" ? `ext4\n${rootSize}` : "squashfs\nMinimize=best";
  writeFileSync(join(defs, `50-${part}.conf`), `[Partition]\nType=${part}\nFormat=${format}\n${copy}\nVerity=data\nVerityMatchKey=${part}\n`);
  writeFileSync(join(defs, `60-${part}-verity.conf`), `[Partition]\nType=${part}-verity\nVerity=hash\nVerityMatchKey=${part}\nMinimize=best\n`);
  writeFileSync(join(defs, `70-${part}-verity-sig.conf`), `[Partition]\nType=${part}-verity-sig\nVerity=signature\nVerityMatchKey=${part}\n`);
}

/** A GPT as sfdisk --json prints it (the fields used here; start and size in sectors). */
type PartitionTable = { sectorsize: number; partitions: { start: number; size: number; name: string }[] };

function partitionTable(raw: string): PartitionTable {
  return (JSON.parse(run("sfdisk", ["--json", raw])) as { partitiontable: PartitionTable }).partitiontable;
}

/** The root hash a DDI's verity-sig partition names (its JSON `rootHash`), read with sfdisk's table. */
export function signedRootHash(raw: string): string {
  const table = partitionTable(raw);
  const sig = table.partitions.find((p) => p.name.endsWith("-verity-sig"));
  if (!sig) throw new Error(`${raw} has no verity-sig partition`);
  const bytes = Buffer.alloc(sig.size * table.sectorsize);
  const fd = openSync(raw, "r");
  try {
    readSync(fd, bytes, 0, bytes.length, sig.start * table.sectorsize);
  } finally { closeSync(fd); }
  return (JSON.parse(bytes.toString("utf8").replace(/\0+$/, "")) as { rootHash: string }).rootHash;
}

/**
 * Where the canary's first 4 KiB data block starts in a raw image (ext4 stores it verbatim); throws
 * unless it is there exactly once, whole (its 64 KiB in one run).
 * @example const offset = findCanary(".cache/e2e/real-root-…/ddi-root.raw")
 */
export function findCanary(raw: string): number {
  const canary = canaryBytes();
  const needle = canary.subarray(0, 4096);
  const found: number[] = [];
  const chunk = Buffer.alloc(64 * 2 ** 20 + needle.length);
  const fd = openSync(raw, "r");
  try {
    // Chunks overlap by the needle's length, so a block across a chunk boundary is found too. The
    // pattern repeats, so the needle also matches at shifted places inside the canary: skip past it.
    let next = 0;
    for (let position = 0; ; position += chunk.length - needle.length) {
      const length = readSync(fd, chunk, 0, chunk.length, position);
      const view = chunk.subarray(0, length);
      for (let at = view.indexOf(needle, Math.max(0, next - position)); at !== -1; at = view.indexOf(needle, next - position)) {
        found.push(position + at);
        next = position + at + canary.length;
      }
      if (length < chunk.length) break;
    }
    const [offset] = found;
    if (found.length !== 1 || offset === undefined) throw new Error(`${raw}: the canary's first block is there ${found.length} times, not once`);
    const whole = Buffer.alloc(canary.length);
    readSync(fd, whole, 0, whole.length, offset);
    if (!whole.equals(canary)) throw new Error(`${raw}: the canary's 64 KiB are not in one run at ${offset}`);
    return offset;
  } finally { closeSync(fd); }
}

/**
 * 64 KiB in the middle of the biggest free extent of the ext4 file system at byte PARTITION_START of
 * RAW (dumpe2fs reads it there), leaving out the file system's last MiB, where blkid looks for
 * signatures. Returns byte offsets in RAW.
 */
function freeStretch(raw: string, partitionStart: number): { offset: number; length: number } {
  const report = run("dumpe2fs", [`${raw}?offset=${partitionStart}`]);
  const blockSize = Number(/^Block size:\s+(\d+)/m.exec(report)?.[1]);
  const blockCount = Number(/^Block count:\s+(\d+)/m.exec(report)?.[1]);
  const length = 64 * 1024;
  const usableEnd = blockCount - (2 ** 20) / blockSize;
  let best = { first: 0, blocks: 0 };
  for (const [, list = ""] of report.matchAll(/^\s+Free blocks: (.*)$/gm)) {
    for (const extent of list.split(",").map((text) => text.trim()).filter(Boolean)) {
      const [first = 0, last = first] = extent.split("-").map(Number);
      const blocks = Math.min(last + 1, usableEnd) - first;
      if (blocks > best.blocks) best = { first, blocks };
    }
  }
  if (!(blockSize > 0) || best.blocks * blockSize < 4 * length) throw new Error(`${raw}: no free extent of ${4 * length} bytes in the root file system`);
  const middle = best.first + Math.floor(best.blocks / 2);
  return { offset: partitionStart + middle * blockSize, length };
}

/** Copies RAW to OUT (sparse) with the byte at OFFSET inverted. */
function flipByte(raw: string, out: string, offset: number): void {
  run("cp", ["--sparse=always", raw, out]);
  const fd = openSync(out, "r+");
  try {
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, offset);
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    writeSync(fd, byte, 0, 1, offset);
  } finally { closeSync(fd); }
}

/** The signing key and certificate the DDIs are made with. */
type Signer = { crt: string; key: string };

/**
 * A DDI of PART made by systemd-repart 257 in the trixie chroot from the tree laid out by LAYOUT (which
 * gets the tree's path inside the chroot's work folder), signed by SIGNER, written to OUT (uncompressed,
 * sparse). ROOT_BYTES: the root partition's fixed size. Returns the root hash its verity-sig partition names.
 */
async function repartDdi(part: "root" | "usr", layout: (tree: string) => void, signer: Signer, out: string, rootBytes?: number): Promise<string> {
  const chroot = await ensureChroot("trixie");
  const work = join(chroot, "tmp/e2e-ddi");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  layout(join(work, "tree"));
  cpSync(signer.crt, join(work, "signer.crt"));
  cpSync(signer.key, join(work, "signer.key"));
  verityDefinitions(join(work, "defs"), part, rootBytes);
  await timed(`systemd-repart ${part} DDI (verity, signature${rootBytes ? `, ${rootBytes / 2 ** 20} MiB root` : ""})`, () => inChroot(chroot,
    "systemd-repart --empty=create --size=auto --offline=yes --dry-run=no --no-pager --json=off " +
    "--private-key=/tmp/e2e-ddi/signer.key --certificate=/tmp/e2e-ddi/signer.crt --definitions=/tmp/e2e-ddi/defs " +
    "--copy-source=/tmp/e2e-ddi/tree /tmp/e2e-ddi/image.raw"));
  run("mv", [join(work, "image.raw"), out]);
  rmSync(work, { recursive: true, force: true });
  // Sparse on disk (a served file's length is what counts; its zero blocks need no room here).
  run("fallocate", ["--dig-holes", out]);
  return signedRootHash(out);
}

/** zstd of RAW next to it, as a non-lazy pull is served. */
function zstdOf(raw: string, out: string): void {
  run("zstd", ["-q", "-T0", "-10", "-f", "-o", out, raw]);
}

/** The two DDIs from TREE, signed by SIGNER: the root one also uncompressed, and corrupted in its canary. */
async function buildDdis(tree: string, signer: Signer, files: RealRoot["files"]): Promise<Pick<RealRoot, "rootHashes" | "canary" | "unread">> {
  const copyTree = (to: string) => run("cp", ["-a", "--reflink=auto", tree, to]);
  const usrRaw = `${files.ddiUsrZst}.tmp.raw`;
  const usr = await repartDdi("usr", copyTree, signer, usrRaw);
  zstdOf(usrRaw, files.ddiUsrZst);
  rmSync(usrRaw);
  const root = await repartDdi("root", copyTree, signer, files.ddiRootRaw);
  zstdOf(files.ddiRootRaw, files.ddiRootZst);
  // A data block of a known file, changed after the hash tree was made: dm-verity must refuse that
  // block (and only it), whether the root hash comes from roothash= or the untouched signature.
  const blockOffset = findCanary(files.ddiRootRaw);
  const flippedOffset = blockOffset + 100;
  flipByte(files.ddiRootRaw, files.ddiRootCorruptRaw, flippedOffset);
  const table = partitionTable(files.ddiRootRaw);
  const partition = table.partitions.find((p) => p.start * table.sectorsize <= blockOffset && blockOffset < (p.start + p.size) * table.sectorsize);
  if (!partition?.name.startsWith("root-")) throw new Error(`the canary at ${blockOffset} is not in the root partition but in ${partition?.name ?? "none"}`);
  const dataBlock = (blockOffset - partition.start * table.sectorsize) / 4096;
  const unread = freeStretch(files.ddiRootRaw, partition.start * table.sectorsize);
  return { rootHashes: { root, usr }, canary: { blockOffset, flippedOffset, dataBlock }, unread };
}

/**
 * Builds (once, cached by the packages, the mirror and this file) the real root and its served forms.
 * @example const root = await ensureRealRoot(); root.files.rawZst
 */
export async function ensureRealRoot(): Promise<RealRoot> {
  const key = cacheKey(debianMirror, ...packages, readFileSync(fileURLToPath(import.meta.url)));
  const dir = join(cacheDir, `real-root-${key}`);
  const named = (base: string) => ({
    files: {
      rawZst: join(base, "root.raw.zst"), tarZst: join(base, "root.tar.zst"),
      ddiRootZst: join(base, "ddi-root.raw.zst"), ddiUsrZst: join(base, "ddi-usr.raw.zst"),
      raw: join(base, "root.raw"), ddiRootRaw: join(base, "ddi-root.raw"), ddiRootCorruptRaw: join(base, "ddi-root-corrupt.raw"),
    },
    verityCertificate: join(base, "netimport-e2e-verity.crt"),
    otherCertificate: join(base, "someone-else.crt"),
  });
  if (existsSync(join(dir, ".complete"))) return { dir, ...named(dir), ...JSON.parse(readFileSync(join(dir, "facts.json"), "utf8")) as Pick<RealRoot, "sizes" | "rootHashes" | "canary" | "unread"> };
  const partial = `${dir}.partial`;
  const tree = join(cacheDir, `real-root-${key}.tree`);
  rmSync(partial, { recursive: true, force: true });
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  const { files } = named(partial);
  await buildTree(tree);
  const treeBytes = Number(run("du", ["-sb", "--apparent-size", tree]).split("\t")[0]);
  // ext4 with room to boot and write: the tree plus a third, at least 512 MiB.
  const size = Math.max(512, Math.ceil((treeBytes * 1.34) / 2 ** 20));
  await timed("real root ext4 .raw and .raw.zst", () => {
    run("mkfs.ext4", ["-q", "-F", "-L", "root", "-d", tree, files.raw, `${size}M`]);
    zstdOf(files.raw, files.rawZst);
  });
  await timed("real root .tar.zst", () =>
    run("bash", ["-euo", "pipefail", "-c", `tar -C "$0" --numeric-owner --xattrs --xattrs-include='*' --acls -cf - . | zstd -q -T0 -10 -o "$1"`,
      tree, files.tarZst]));
  const signer = certificate(partial, "netimport-e2e-verity");
  certificate(partial, "someone-else");
  const { rootHashes, canary, unread } = await buildDdis(tree, signer, files);
  rmSync(tree, { recursive: true, force: true });
  const sizes = {
    tree: treeBytes, rawZst: statSync(files.rawZst).size, tarZst: statSync(files.tarZst).size,
    ddiRootZst: statSync(files.ddiRootZst).size, ddiUsrZst: statSync(files.ddiUsrZst).size,
    raw: statSync(files.raw).size, ddiRootRaw: statSync(files.ddiRootRaw).size,
  };
  writeFileSync(join(partial, "facts.json"), JSON.stringify({ sizes, rootHashes, canary, unread }));
  writeFileSync(join(partial, ".complete"), "");
  renameSync(partial, dir);
  return { dir, ...named(dir), sizes, rootHashes, canary, unread };
}

/**
 * Hard-links every served form of the real root into SERVED_DIR/real/ (so the lab's server serves them
 * at real/<file name>); returns the served path of each, relative to SERVED_DIR.
 * @example const paths = serveRealRoot(lab.images.dir, root); lab.server.url(paths.ddiRootRaw)
 */
export function serveRealRoot(servedDir: string, root: RealRoot): RealRoot["files"] {
  mkdirSync(join(servedDir, "real"), { recursive: true });
  const paths = Object.fromEntries(Object.entries(root.files).map(([name, file]) => {
    const path = `real/${file.slice(root.dir.length + 1)}`;
    rmSync(join(servedDir, path), { force: true });
    linkSync(file, join(servedDir, path));
    return [name, path];
  }));
  return paths as RealRoot["files"];
}

/** A root DDI of the same system with a bigger root partition, for the benchmarks. */
export type BigDdi = { raw: string; zst: string; bytes: number; rootHash: string };

/**
 * The real root's DDI with a root partition of ROOT_MIB (the same files from root.tar.zst, the same
 * signer; the rest of the ext4 file system is empty, so the image is sparse on disk and its zstd small),
 * uncompressed and as .raw.zst; cached next to the real root.
 * @example const big = await ensureBigDdi(await ensureRealRoot(), 2048); big.raw
 */
export async function ensureBigDdi(root: RealRoot, rootMiB: number): Promise<BigDdi> {
  const dir = `${root.dir}-big-${rootMiB}`;
  const named = { raw: join(dir, `ddi-root-${rootMiB}.raw`), zst: join(dir, `ddi-root-${rootMiB}.raw.zst`) };
  if (existsSync(join(dir, ".complete"))) return { ...named, ...JSON.parse(readFileSync(join(dir, "facts.json"), "utf8")) as Pick<BigDdi, "bytes" | "rootHash"> };
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  const files = { raw: join(partial, `ddi-root-${rootMiB}.raw`), zst: join(partial, `ddi-root-${rootMiB}.raw.zst`) };
  const untar = (to: string) => {
    mkdirSync(to, { recursive: true });
    run("bash", ["-euo", "pipefail", "-c", `zstd -q -dc "$0" | tar -C "$1" --numeric-owner --xattrs --xattrs-include='*' --acls -xpf -`, root.files.tarZst, to]);
  };
  const signer = { crt: root.verityCertificate, key: join(root.dir, "netimport-e2e-verity.key") };
  const rootHash = await repartDdi("root", untar, signer, files.raw, rootMiB * 2 ** 20);
  await timed(`zstd of the ${rootMiB} MiB root DDI`, () => zstdOf(files.raw, files.zst));
  const bytes = statSync(files.raw).size;
  writeFileSync(join(partial, "facts.json"), JSON.stringify({ bytes, rootHash }));
  writeFileSync(join(partial, ".complete"), "");
  renameSync(partial, dir);
  return { ...named, bytes, rootHash };
}
