// A real operating system for the boot tests: Debian trixie with systemd as PID 1 (mmdebstrap minbase),
// served as an ext4 `.raw.zst` and as a `.tar.zst`. A probe service in it reports, on the serial console,
// what a user would check once the system is up (`systemctl is-system-running`, the root's mount options,
// a setuid-root program run by an unprivileged user, a file capability, an ACL and an xattr), then
// powers the machine off, so a scenario also sees whether shutdown ends in the kernel's power-down.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cacheDir, debianMirror } from "./paths.ts";
import { cacheKey, run, timed } from "./exec.ts";

/** What the root holds besides minbase: systemd as init, and the tools the probe uses. */
const packages = [
  "systemd-sysv", "udev", "dbus", "util-linux", "mount", "kmod", "iproute2", "procps",
  "iputils-ping", "libcap2-bin", "acl", "attr",
];

/** Units that would wait for a console, a network or a first-boot dialogue nobody answers in a test. */
const masked = ["getty@.service", "serial-getty@.service", "systemd-networkd-wait-online.service", "systemd-firstboot.service"];

const probe = `#!/bin/bash
# netimport boot test probe: what a user checks once the downloaded system is up, on the serial console.
out=/dev/ttyS0
say() { echo "NETIMPORT-E2E-$*" >"$out"; }
up() { cut -d' ' -f1 /proc/uptime; }
state=$(systemctl is-system-running --wait)
say "SYSTEM state=$state uptime=$(up)"
for unit in $(systemctl list-units --state=failed --plain --no-legend | cut -d' ' -f1); do say "FAILED-UNIT $unit"; done
say "ROOT-OPTIONS $(findmnt -no OPTIONS /)"
say "SUID $(setpriv --reuid=65534 --regid=65534 --clear-groups /usr/local/bin/e2e-suid-id)"
say "CAPS $(getcap /usr/local/bin/e2e-cap-ping)"
say "ACL $(getfacl --omit-header --absolute-names /etc/e2e-acl | grep '^user:nobody')"
say "XATTR $(getfattr --only-values -n user.e2e /etc/e2e-xattr)"
# What the pull left on the image in the initrd's /run (moved into this system's /run at switch-root).
image=$(ls -d /run/machines/* | head -n 1)
say "SOURCE-URL $(getfattr --absolute-names --only-values -n user.source_url "$image" 2>&1)"
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
  /** Folder holding root.raw.zst and root.tar.zst. */
  dir: string;
  files: { rawZst: string; tarZst: string };
  /** Bytes: the unpacked tree, and each served file. */
  sizes: { tree: number; rawZst: number; tarZst: number };
};

/** Lays out the trixie root tree in DIR (mmdebstrap, then the probe, the masks and the test files). */
async function buildTree(dir: string): Promise<void> {
  await timed("mmdebstrap trixie real root", () =>
    run("mmdebstrap", ["--mode=root", "--variant=minbase", `--include=${packages.join(",")}`, "--quiet", "trixie", dir, debianMirror]));
  for (const unit of masked) run("ln", ["-sf", "/dev/null", join(dir, "etc/systemd/system", unit)]);
  writeFileSync(join(dir, "etc/hostname"), "netimport-e2e\n");
  writeFileSync(join(dir, "etc/machine-id"), `${cacheKey("netimport-e2e-machine").padEnd(32, "0")}\n`);
  writeFileSync(join(dir, "usr/local/sbin/netimport-e2e-probe"), probe, { mode: 0o755 });
  writeFileSync(join(dir, "etc/systemd/system/netimport-e2e-probe.service"), probeUnit);
  mkdirSync(join(dir, "etc/systemd/system/multi-user.target.wants"), { recursive: true });
  run("ln", ["-sf", "../netimport-e2e-probe.service", join(dir, "etc/systemd/system/multi-user.target.wants/")]);
  // A setuid-root copy of id(1): run by nobody, it reports euid=0 only where setuid works.
  run("install", ["-m", "4755", "-o", "root", "-g", "root", join(dir, "usr/bin/id"), join(dir, "usr/local/bin/e2e-suid-id")]);
  writeFileSync(join(dir, "etc/e2e-acl"), "acl test\n");
  run("setfacl", ["-m", "u:nobody:r", join(dir, "etc/e2e-acl")]);
  writeFileSync(join(dir, "etc/e2e-xattr"), "xattr test\n");
  run("setfattr", ["-n", "user.e2e", "-v", "kept", join(dir, "etc/e2e-xattr")]);
  // A file capability (trixie's ping relies on ping_group_range and has none of its own).
  run("install", ["-m", "0755", join(dir, "usr/bin/ping"), join(dir, "usr/local/bin/e2e-cap-ping")]);
  run("setcap", ["cap_net_raw+ep", join(dir, "usr/local/bin/e2e-cap-ping")]);
}

/**
 * Builds (once, cached by the packages, the mirror and this file) the real root and its served forms.
 * @example const root = await ensureRealRoot(); root.files.rawZst
 */
export async function ensureRealRoot(): Promise<RealRoot> {
  const key = cacheKey(debianMirror, ...packages, readFileSync(fileURLToPath(import.meta.url)));
  const dir = join(cacheDir, `real-root-${key}`);
  const files = { rawZst: join(dir, "root.raw.zst"), tarZst: join(dir, "root.tar.zst") };
  const sizesFile = join(dir, "sizes.json");
  if (existsSync(join(dir, ".complete"))) return { dir, files, sizes: JSON.parse(readFileSync(sizesFile, "utf8")) };
  const partial = `${dir}.partial`;
  const tree = join(cacheDir, `real-root-${key}.tree`);
  rmSync(partial, { recursive: true, force: true });
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  await buildTree(tree);
  const treeBytes = Number(run("du", ["-sb", "--apparent-size", tree]).split("\t")[0]);
  // ext4 with room to boot and write: the tree plus a third, at least 512 MiB.
  const raw = join(partial, "root.raw");
  const size = Math.max(512, Math.ceil((treeBytes * 1.34) / 2 ** 20));
  await timed("real root ext4 .raw.zst", () => {
    run("mkfs.ext4", ["-q", "-F", "-L", "root", "-d", tree, raw, `${size}M`]);
    run("zstd", ["-q", "-T0", "-10", "--rm", "-f", "-o", files.rawZst.replace(dir, partial), raw]);
  });
  await timed("real root .tar.zst", () =>
    run("bash", ["-euo", "pipefail", "-c", `tar -C "$0" --numeric-owner --xattrs --xattrs-include='*' --acls -cf - . | zstd -q -T0 -10 -o "$1"`,
      tree, files.tarZst.replace(dir, partial)]));
  rmSync(tree, { recursive: true, force: true });
  const sizes = { tree: treeBytes, rawZst: statSync(files.rawZst.replace(dir, partial)).size, tarZst: statSync(files.tarZst.replace(dir, partial)).size };
  writeFileSync(join(partial, "sizes.json"), JSON.stringify(sizes));
  writeFileSync(join(partial, ".complete"), "");
  renameSync(partial, dir);
  return { dir, files, sizes };
}

