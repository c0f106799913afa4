// A real operating system for the boot tests: Debian trixie with systemd as PID 1 (mmdebstrap minbase),
// served as an ext4 `.raw.zst`, as a `.tar.zst`, and as two systemd DDIs made by trixie's systemd-repart:
// a root partition (ext4) with dm-verity and a signed verity-sig partition, and a /usr-only image
// (/usr as squashfs, usr-verity, usr-verity-sig) booted with root=tmpfs. A probe service in it reports, on the serial
// console, what a user would check once the system is up (`systemctl is-system-running`, the root's mount
// options, a setuid-root program run by an unprivileged user, a file capability, an ACL and an xattr,
// what the pull left on the image), then powers the machine off, so a scenario also sees whether
// shutdown ends in the kernel's power-down. Everything the probe needs lives below /usr, so that the
// /usr-only image carries it too; its /etc comes from /usr/share/factory/etc through tmpfiles.
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
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
image=$(ls -d /run/machines/* | head -n 1)
say "SOURCE-URL $(getfattr --absolute-names --only-values -n user.source_url "$image" 2>&1)"
say "VERITY $(cat /sys/block/dm-*/dm/name 2>/dev/null | tr '\\n' ' ')"
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
  files: { rawZst: string; tarZst: string; ddiRootZst: string; ddiUsrZst: string };
  /** The certificate the DDIs' verity-sig partitions are signed with (for the initrd's /etc/verity.d). */
  verityCertificate: string;
  /** A certificate nobody signed anything with (a verity-sig partition must not verify against it). */
  otherCertificate: string;
  /** Bytes: the unpacked tree, and each served file. */
  sizes: { tree: number; rawZst: number; tarZst: number; ddiRootZst: number; ddiUsrZst: number };
  /** The root hashes of the DDIs' verity partitions (what roothash=/usrhash= would pin). */
  rootHashes: { root: string; usr: string };
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

/** Partition definitions for systemd-repart: a data partition with its verity and signature partitions. */
function verityDefinitions(defs: string, part: "root" | "usr"): void {
  mkdirSync(defs, { recursive: true });
  const copy = part === "root" ? "CopyFiles=/" : "CopyFiles=/usr:/";
  // The file systems DDIs use (the mkosi images are erofs): ext4 for the root, squashfs for /usr.
  // ext4 is not read-only by design, so repart can only guess its minimal size.
  const format = part === "root" ? "ext4\nMinimize=guess" : "squashfs\nMinimize=best";
  writeFileSync(join(defs, `50-${part}.conf`), `[Partition]\nType=${part}\nFormat=${format}\n${copy}\nVerity=data\nVerityMatchKey=${part}\n`);
  writeFileSync(join(defs, `60-${part}-verity.conf`), `[Partition]\nType=${part}-verity\nVerity=hash\nVerityMatchKey=${part}\nMinimize=best\n`);
  writeFileSync(join(defs, `70-${part}-verity-sig.conf`), `[Partition]\nType=${part}-verity-sig\nVerity=signature\nVerityMatchKey=${part}\n`);
}

/** The root hash a DDI's verity-sig partition names (its JSON `rootHash`), read with sfdisk's table. */
export function signedRootHash(raw: string): string {
  type Table = { partitiontable: { sectorsize: number; partitions: { start: number; size: number; name: string }[] } };
  const table = (JSON.parse(run("sfdisk", ["--json", raw])) as Table).partitiontable;
  const sig = table.partitions.find((p) => p.name.endsWith("-verity-sig"));
  if (!sig) throw new Error(`${raw} has no verity-sig partition`);
  const bytes = readFileSync(raw).subarray(sig.start * table.sectorsize, (sig.start + sig.size) * table.sectorsize);
  return (JSON.parse(bytes.toString("utf8").replace(/\0+$/, "")) as { rootHash: string }).rootHash;
}

/** The two DDIs, made by systemd-repart 257 in the trixie chroot from TREE, signed with KEY/CRT; their root hashes. */
async function buildDdis(tree: string, signer: { crt: string; key: string }, out: { root: string; usr: string }): Promise<{ root: string; usr: string }> {
  const chroot = await ensureChroot("trixie");
  const work = join(chroot, "tmp/e2e-ddi");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  run("cp", ["-a", "--reflink=auto", tree, join(work, "tree")]);
  cpSync(signer.crt, join(work, "signer.crt"));
  cpSync(signer.key, join(work, "signer.key"));
  const hashes = { root: "", usr: "" };
  for (const part of ["root", "usr"] as const) {
    verityDefinitions(join(work, `defs-${part}`), part);
    await timed(`systemd-repart ${part} DDI (verity, signature)`, () => inChroot(chroot,
      "systemd-repart --empty=create --size=auto --offline=yes --dry-run=no --no-pager --json=off " +
      `--private-key=/tmp/e2e-ddi/signer.key --certificate=/tmp/e2e-ddi/signer.crt --definitions=/tmp/e2e-ddi/defs-${part} ` +
      `--copy-source=/tmp/e2e-ddi/tree /tmp/e2e-ddi/${part}.raw`));
    run("zstd", ["-q", "-T0", "-10", "-f", "-o", out[part], join(work, `${part}.raw`)]);
    hashes[part] = signedRootHash(join(work, `${part}.raw`));
  }
  rmSync(work, { recursive: true, force: true });
  return hashes;
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
    },
    verityCertificate: join(base, "netimport-e2e-verity.crt"),
    otherCertificate: join(base, "someone-else.crt"),
  });
  if (existsSync(join(dir, ".complete"))) return { dir, ...named(dir), ...JSON.parse(readFileSync(join(dir, "facts.json"), "utf8")) as Pick<RealRoot, "sizes" | "rootHashes"> };
  const partial = `${dir}.partial`;
  const tree = join(cacheDir, `real-root-${key}.tree`);
  rmSync(partial, { recursive: true, force: true });
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  const { files } = named(partial);
  await buildTree(tree);
  const treeBytes = Number(run("du", ["-sb", "--apparent-size", tree]).split("\t")[0]);
  // ext4 with room to boot and write: the tree plus a third, at least 512 MiB.
  const raw = join(partial, "root.raw");
  const size = Math.max(512, Math.ceil((treeBytes * 1.34) / 2 ** 20));
  await timed("real root ext4 .raw.zst", () => {
    run("mkfs.ext4", ["-q", "-F", "-L", "root", "-d", tree, raw, `${size}M`]);
    run("zstd", ["-q", "-T0", "-10", "--rm", "-f", "-o", files.rawZst, raw]);
  });
  await timed("real root .tar.zst", () =>
    run("bash", ["-euo", "pipefail", "-c", `tar -C "$0" --numeric-owner --xattrs --xattrs-include='*' --acls -cf - . | zstd -q -T0 -10 -o "$1"`,
      tree, files.tarZst]));
  const signer = certificate(partial, "netimport-e2e-verity");
  certificate(partial, "someone-else");
  const rootHashes = await buildDdis(tree, signer, { root: files.ddiRootZst, usr: files.ddiUsrZst });
  rmSync(tree, { recursive: true, force: true });
  const sizes = {
    tree: treeBytes, rawZst: statSync(files.rawZst).size, tarZst: statSync(files.tarZst).size,
    ddiRootZst: statSync(files.ddiRootZst).size, ddiUsrZst: statSync(files.ddiUsrZst).size,
  };
  writeFileSync(join(partial, "facts.json"), JSON.stringify({ sizes, rootHashes }));
  writeFileSync(join(partial, ".complete"), "");
  renameSync(partial, dir);
  return { dir, ...named(dir), sizes, rootHashes };
}
