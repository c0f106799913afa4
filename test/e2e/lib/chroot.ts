// Debian chroots (made with mmdebstrap) in which dracut, ukify, systemd-repart and mkosi run.
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { cacheDir, debianMirror } from "./paths.ts";
import { cacheKey, run, timed } from "./exec.ts";

/** The suites the boot tests build initrds from, with the systemd each one ships. */
export type Suite = "trixie" | "bookworm";

const common = [
  "systemd", "udev", "systemd-container", "util-linux", "kmod", "iproute2", "dracut-core", "dracut-network",
  "zstd", "xz-utils", "e2fsprogs", "dbus", "curl", "ca-certificates", "tar", "libstdc++6", "dmsetup", "attr",
  // A lazy root (rd.systemd.import=…,lazy,…) connects the kernel's NBD driver with Debian's nbd-client,
  // which the netimport dracut module installs into the initrd when the system building it has it.
  "nbd-client",
];
/** Packages per suite; trixie also builds the GPT image (repart), the UKIs (ukify) and runs mkosi. */
export const chrootPackages: Record<Suite, readonly string[]> = {
  trixie: [...common, "systemd-repart", "systemd-ukify", "systemd-boot-efi", "erofs-utils", "squashfs-tools", "mkosi"],
  bookworm: common,
};

/**
 * Returns the folder of a cached chroot of SUITE, building it with mmdebstrap (~25 s) when missing.
 * @example const root = await ensureChroot("trixie"); inChroot(root, "dracut --version")
 */
export async function ensureChroot(suite: Suite): Promise<string> {
  const dir = join(cacheDir, `chroot-${suite}-${cacheKey(suite, debianMirror, ...chrootPackages[suite])}`);
  if (existsSync(join(dir, ".complete"))) return dir;
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(cacheDir, { recursive: true });
  await timed(`mmdebstrap ${suite} → ${dir}`, () =>
    run("mmdebstrap", [
      "--mode=root", "--variant=minbase", `--include=${chrootPackages[suite].join(",")}`,
      "--quiet", suite, partial, debianMirror,
    ]));
  run("touch", [join(partial, ".complete")]);
  renameSync(partial, dir);
  return dir;
}

/**
 * Runs a bash script inside a chroot with /proc, /sys and /dev mounted in a private mount namespace,
 * so nothing stays mounted when it ends, whatever happens. BINDS: host folders mounted at the same path inside.
 */
export function inChroot(root: string, script: string, env: Record<string, string> = {}, binds: readonly string[] = []): string {
  const setup = [
    // The chroot's / must be a mount point for sandboxing tools (mkosi-sandbox remounts it).
    'mount --bind "$0" "$0"', 'mount -t proc proc "$0/proc"', 'mount --rbind /sys "$0/sys"', 'mount --rbind /dev "$0/dev"',
    'mount -t tmpfs tmpfs "$0/run"',
    ...binds.map((dir) => `mkdir -p "$0${dir}" && mount --rbind ${JSON.stringify(dir)} "$0${dir}"`),
    'exec chroot "$0" /bin/bash -euo pipefail -c "$1"',
  ].join(" && ");
  return run("unshare", ["--mount", "--propagation", "private", "--fork", "bash", "-c", setup, root, script], {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root", LANG: "C.UTF-8", ...env },
  });
}
