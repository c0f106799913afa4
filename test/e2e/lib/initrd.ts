// Test initrds in layers, concatenated (the kernel unpacks concatenated cpio archives in order):
//   base      dracut inside the chroot: systemd, networkd, udev, the netimport dracut module (the one
//             dist/tree ships) and its dependencies (losetup, mount, tar, dmsetup, libstdc++, dm-verity,
//             nbd-client and nbd for a lazy root), curl for the reference measurement;
//             rebuilt only when the chroot, kernel or dracut module change.
//   netimport dist/tree as its own zstd cpio; rebuilt when the product changes.
//   e2e       the test overlay (markers, emergency drop-in, keyring), small and uncompressed.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cacheDir, distTree, e2eDir } from "./paths.ts";
import { cacheKey, fileSha256, folderFingerprint, run, say, timed } from "./exec.ts";
import { ensureChroot, inChroot, type Suite } from "./chroot.ts";
import { ensureKernel, installKernelModules, type Kernel } from "./kernel.ts";

/** The dracut module as the product ships it (npm run build copies integrations/dracut/ into dist/tree). */
const moduleDir = join(distTree, "usr/lib/dracut/modules.d/95netimport");
// nbd: a lazy root's block device (the netimport module installs it too; named here so that a base
// initrd built from an older dist/tree still has it).
const drivers = "virtio_pci virtio_net virtio_blk loop nbd ext4 erofs squashfs efivarfs";
const extraTools = "curl sed cat sha256sum";

function dracutModules(chroot: string): string {
  const wanted = ["systemd", "systemd-initrd", "systemd-networkd", "systemd-udevd", "systemd-journald",
    "systemd-emergency", "kernel-modules", "base", "udev-rules", "netimport"];
  const available = readdirSync(join(chroot, "usr/lib/dracut/modules.d")).map((name) => name.slice(2));
  // dracut 059 (bookworm) has no systemd-emergency module; the netimport module installs those units.
  return wanted.filter((name) => name === "netimport" || available.includes(name)).join(" ");
}

/**
 * The dracut-built base initrd of a suite, cached by chroot, kernel and dracut module contents.
 * @example const { path } = await ensureBaseInitrd("trixie")
 */
export async function ensureBaseInitrd(suite: Suite): Promise<{ path: string; kernel: Kernel; chroot: string }> {
  const chroot = await ensureChroot(suite);
  const kernel = await ensureKernel();
  await waitForBuild(join(moduleDir, "module-setup.sh"));
  const key = cacheKey(chroot, kernel.version, folderFingerprint(moduleDir), drivers, extraTools, dracutModules(chroot));
  const path = join(cacheDir, "initrd", `base-${suite}-${key}.img`);
  if (existsSync(path)) return { path, kernel, chroot };
  installKernelModules(chroot, kernel);
  const installed = join(chroot, "usr/lib/dracut/modules.d/95netimport");
  rmSync(installed, { recursive: true, force: true });
  cpSync(moduleDir, installed, { recursive: true });
  mkdirSync(join(cacheDir, "initrd"), { recursive: true });
  await timed(`dracut ${suite} base initrd`, () => inChroot(chroot, [
    "dracut --quiet --force --no-hostonly --nostrip --no-early-microcode --reproducible",
    `--kver ${kernel.version} --modules "${dracutModules(chroot)}" --omit "dracut-systemd plymouth i18n"`,
    `--drivers "${drivers}" --install "${extraTools}" --compress zstd /tmp/e2e-initrd.img`,
  ].join(" ")));
  renameSync(join(chroot, "tmp/e2e-initrd.img"), path);
  say(`base initrd ${suite}: ${mib(statSync(path).size)}`);
  return { path, kernel, chroot };
}

/**
 * dist/tree as a zstd cpio layer, cached by the executable's hash and the level. The boots use a fast
 * level (3); level 15 is what dracut's --compress zstd uses, so its size is what netimport adds to a
 * real initrd (measured once per build).
 * @example const { path, bytes } = await ensureNetimportLayer(15)
 */
export async function ensureNetimportLayer(level = 3): Promise<{ path: string; bytes: number }> {
  const exe = await waitForBuild(join(distTree, "usr/lib/netimport/netimport"));
  const key = cacheKey(fileSha256(exe), treeListing(distTree), String(level));
  const path = join(cacheDir, "initrd", `netimport-${key}-zstd${level}.cpio.zst`);
  if (!existsSync(path)) {
    mkdirSync(join(cacheDir, "initrd"), { recursive: true });
    await timed(`netimport initrd layer (dist/tree, zstd -${level})`, () => cpio(distTree, `${path}.partial`, level));
    renameSync(`${path}.partial`, path);
  }
  return { path, bytes: statSync(path).size };
}

/** Names, types and link targets in a folder (the tree's layout, without reading the big executable). */
function treeListing(dir: string): string {
  return run("bash", ["-c", 'cd "$0" && find . -printf "%p %y %l\\n" | LC_ALL=C sort', dir]);
}

/** Writes a cpio archive of DIR to OUT (zstd when a level is given). */
export function cpio(dir: string, out: string, zstdLevel?: number): void {
  const compress = zstdLevel === undefined ? "cat" : `zstd -q -T0 -${zstdLevel}`;
  run("bash", ["-euo", "pipefail", "-c",
    `cd "$0" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | ${compress} >"$1"`, dir, out]);
}

/** Extra files for one boot's e2e layer: path inside the initrd → contents (mode 0644, or 0755 for .sh). */
export type ExtraFiles = Record<string, string | Buffer>;

/** The test overlay plus EXTRA as an uncompressed cpio in a fresh file under WORK. */
export function e2eLayer(work: string, extra: ExtraFiles = {}): string {
  const staging = join(work, "e2e-layer");
  rmSync(staging, { recursive: true, force: true });
  cpSync(join(e2eDir, "overlay"), staging, { recursive: true, verbatimSymlinks: true });
  for (const [path, contents] of Object.entries(extra)) {
    const target = join(staging, path);
    mkdirSync(join(target, ".."), { recursive: true });
    writeFileSync(target, contents, { mode: path.endsWith(".sh") ? 0o755 : 0o644 });
  }
  const out = join(work, "e2e-layer.cpio");
  cpio(staging, out);
  return out;
}

/** Concatenates initrd layers into one file (QEMU's -initrd and ukify take one). */
export function concatInitrd(layers: readonly string[], out: string): string {
  // The kernel only finds an uncompressed archive at a 4-byte aligned offset; zero padding is skipped.
  const padded = layers.flatMap((layer) => {
    const bytes = readFileSync(layer);
    return [bytes, Buffer.alloc((512 - (bytes.length % 512)) % 512)];
  });
  writeFileSync(out, Buffer.concat(padded));
  return out;
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * Returns EXE once it exists. `npm run build` deletes dist/ before it writes it again, so a build that
 * runs at the same moment (another terminal, another job) gets up to 60 s to finish.
 */
export async function waitForBuild(exe: string): Promise<string> {
  for (let waited = 0; !existsSync(exe); waited += 2) {
    if (waited >= 60) throw new Error(`${exe} is missing: run \`npm run build\` first`);
    if (waited === 0) say(`${exe} is missing; waiting for a running build to finish`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  return exe;
}
