// The images the guests download: a tiny busybox root file system in every format the scenarios need,
// a system extension, big images for the measurements, checksums and gpg signatures.
// Everything lands in one served folder, cached by the inputs' fingerprint.
import { copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { cacheDir } from "./paths.ts";
import { cacheKey, fileSha256, run, timed } from "./exec.ts";
import { ensureChroot, inChroot } from "./chroot.ts";

/** Paths (relative to the served folder) of what the scenarios download. */
export const served = {
  ext4Zst: "ext4/root-ext4.raw.zst",
  gptXz: "gpt/image.raw.xz",
  gptRaw: "gpt/image.raw",
  tarGz: "tar/root-tar.tar.gz",
  tarXz: "tar/image.tar.xz",
  sysext: "sysext/hello.raw",
  bench64: "bench/bench-64.raw",
  bench512: "bench/bench-512.raw",
} as const;

export type Images = { dir: string; keyring: string; sha256: (path: string) => string };

const rootInit = `#!/bin/busybox sh
# /sbin/init of the boot tests' root images: report on the serial console, then power off.
b=/bin/busybox
out=/dev/ttyS0
[ -e /proc/uptime ] || $b mount -t proc proc /proc
read -r up _ </proc/uptime
name=$($b cat /etc/e2e-name)
echo "NETIMPORT-E2E-ROOT-OK $name uptime=$up" >$out
if echo ok >/e2e-rw-test 2>/dev/null && [ "$($b cat /e2e-rw-test)" = ok ]; then rw=yes; else rw=no; fi
echo "NETIMPORT-E2E-RW $rw" >$out
echo "NETIMPORT-E2E-ROOTFS $($b grep ' / ' /proc/mounts | $b tail -n 1)" >$out
echo "NETIMPORT-E2E-EXTENSIONS $($b ls /run/extensions 2>/dev/null | $b tr '\\n' ' ')" >$out
echo "NETIMPORT-E2E-MACHINES $($b ls /run/machines 2>/dev/null | $b tr '\\n' ' ')" >$out
$b sync
$b poweroff -f
`;

function osRelease(name: string): string {
  return `ID=netimport-e2e\nNAME="netimport boot test root (${name})"\nVERSION_ID=1\n`;
}

/** Lays out the busybox root tree for image NAME (its marker says NAME). */
export function rootTree(dir: string, name: string): string {
  rmSync(dir, { recursive: true, force: true });
  for (const sub of ["bin", "sbin", "etc", "usr/lib", "dev", "proc", "sys", "run", "tmp", "mnt", "sysroot"]) {
    mkdirSync(join(dir, sub), { recursive: true });
  }
  copyFileSync("/usr/bin/busybox", join(dir, "bin/busybox"));
  run("chmod", ["755", join(dir, "bin/busybox")]);
  run("ln", ["-s", "busybox", join(dir, "bin/sh")]);
  writeFileSync(join(dir, "sbin/init"), rootInit, { mode: 0o755 });
  writeFileSync(join(dir, "usr/lib/os-release"), osRelease(name));
  writeFileSync(join(dir, "etc/os-release"), osRelease(name));
  writeFileSync(join(dir, "etc/e2e-name"), `${name}\n`);
  return dir;
}

/** ext4 image of a tree (sparse, SIZE like "16M"). */
function ext4(tree: string, out: string, size: string): void {
  run("mkfs.ext4", ["-q", "-F", "-L", "root", "-d", tree, out, size]);
}

/** GPT disk made by trixie's systemd-repart: partition 1 is a 1 MiB spacer, partition 2 the root (ext4). */
async function gptImage(tree: string, out: string): Promise<void> {
  const chroot = await ensureChroot("trixie");
  const work = join(chroot, "tmp/e2e-repart");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, "defs"), { recursive: true });
  run("cp", ["-a", tree, join(work, "tree")]);
  writeFileSync(join(work, "defs/10-spacer.conf"), "[Partition]\nType=linux-generic\nSizeMinBytes=1M\nSizeMaxBytes=1M\n");
  writeFileSync(join(work, "defs/20-root.conf"),
    "[Partition]\nType=root\nLabel=root\nFormat=ext4\nCopyFiles=/\nSizeMinBytes=24M\nSizeMaxBytes=24M\n");
  inChroot(chroot, "systemd-repart --empty=create --size=auto --offline=yes --dry-run=no --no-pager " +
    "--definitions=/tmp/e2e-repart/defs --copy-source=/tmp/e2e-repart/tree /tmp/e2e-repart/image.raw");
  renameSync(join(work, "image.raw"), out);
  rmSync(work, { recursive: true, force: true });
}

/** A gpg home with one signing key (ed25519), and its public keyring as systemd reads it. */
function signingKey(home: string): string {
  const keyring = join(home, "import-pubring.pgp");
  if (existsSync(keyring)) return keyring;
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const env = { ...process.env, GNUPGHOME: home };
  run("gpg", ["--batch", "--passphrase", "", "--quick-gen-key", "netimport e2e <e2e@netimport.invalid>", "ed25519", "sign", "never"], { env });
  run("gpg", ["--batch", "--export", "--output", `${keyring}.partial`], { env });
  renameSync(`${keyring}.partial`, keyring);
  return keyring;
}

/** Writes SHA256SUMS(.gpg) for every file in DIR, and FILE.sha256(.asc) for each file too. */
function signFolder(dir: string, files: readonly string[], home: string): void {
  const env = { ...process.env, GNUPGHOME: home };
  const lines = files.map((file) => `${fileSha256(join(dir, file))}  ${file}\n`);
  writeFileSync(join(dir, "SHA256SUMS"), lines.join(""));
  run("gpg", ["--batch", "--yes", "--detach-sign", "--output", join(dir, "SHA256SUMS.gpg"), join(dir, "SHA256SUMS")], { env });
  files.forEach((file, i) => {
    writeFileSync(join(dir, `${file}.sha256`), lines[i] ?? "");
    run("gpg", ["--batch", "--yes", "--armor", "--detach-sign", "--output", join(dir, `${file}.sha256.asc`), join(dir, `${file}.sha256`)], { env });
  });
}

/**
 * Builds (once) and returns the served folder with every image, plus the keyring that verifies them.
 * @example const images = await ensureImages(); images.sha256(served.ext4Zst)
 */
export async function ensureImages(): Promise<Images> {
  // Keyed by this file's own text: any change to how images are made rebuilds them.
  const key = cacheKey(readFileSync(fileURLToPath(import.meta.url)));
  const dir = join(cacheDir, `www-${key}`);
  const home = join(cacheDir, "gpg");
  const keyring = signingKey(home);
  const images: Images = { dir, keyring, sha256: (path) => fileSha256(join(dir, path)) };
  if (existsSync(join(dir, ".complete"))) return images;
  const partial = `${dir}.partial`;
  const work = `${dir}.work`;
  rmSync(partial, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
  for (const sub of ["ext4", "gpt", "tar", "sysext", "bench"]) mkdirSync(join(partial, sub), { recursive: true });
  mkdirSync(work, { recursive: true });
  ext4(rootTree(join(work, "t-ext4"), "ext4-zst"), join(work, "ext4.raw"), "16M");
  run("zstd", ["-q", "-19", "-T0", "-f", "-o", join(partial, served.ext4Zst), join(work, "ext4.raw")]);
  await timed("GPT image (systemd-repart)", () => gptImage(rootTree(join(work, "t-gpt"), "gpt"), join(partial, served.gptRaw)));
  run("xz", ["-T0", "-6", "-k", "-f", join(partial, served.gptRaw)]);
  signFolder(join(partial, "gpt"), ["image.raw.xz", "image.raw"], home);
  const tarTree = rootTree(join(work, "t-tar"), "tar");
  run("tar", ["-C", tarTree, "--numeric-owner", "-czf", join(partial, served.tarGz), "."]);
  rootTree(tarTree, "tar-bootorigin");
  run("tar", ["-C", tarTree, "--numeric-owner", "-cJf", join(partial, served.tarXz), "."]);
  const ext = join(work, "t-sysext");
  mkdirSync(join(ext, "usr/lib/extension-release.d"), { recursive: true });
  mkdirSync(join(ext, "usr/share/hello"), { recursive: true });
  writeFileSync(join(ext, "usr/lib/extension-release.d/extension-release.hello"), "ID=_any\n");
  writeFileSync(join(ext, "usr/share/hello/greeting"), "hello from a system extension\n");
  run("mkfs.erofs", [join(partial, served.sysext), ext]);
  for (const [size, path] of [[64, served.bench64], [512, served.bench512]] as const) {
    ext4(rootTree(join(work, `t-bench-${size}`), `bench-${size}`), join(partial, path), `${size}M`);
  }
  rmSync(work, { recursive: true, force: true });
  writeFileSync(join(partial, ".complete"), "");
  renameSync(partial, dir);
  return images;
}

/** Hard-links served files next to each other (e.g. images next to a UKI, for bootorigin). */
export function linkInto(images: Images, from: string, toDir: string, name: string): void {
  mkdirSync(join(images.dir, toDir), { recursive: true });
  const target = join(images.dir, toDir, name);
  rmSync(target, { force: true });
  linkSync(join(images.dir, from), target);
}
