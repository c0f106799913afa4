// Unified kernel images for UEFI HTTP boot, built with trixie's ukify around either systemd-stub 257
// (trixie: sets no boot URL variable) or systemd-stub 262 (sid: sets StubDeviceURL/LoaderDeviceURL).
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cacheDir } from "./paths.ts";
import { aptCandidate, aptExtract } from "./apt.ts";
import { ensureChroot, inChroot } from "./chroot.ts";
import { timed } from "./exec.ts";

export type Stub = "257" | "262";
const stubInPackage = "usr/lib/systemd/boot/efi/linuxx64.efi.stub";

/** The path of a systemd-stub: 257 from the trixie chroot, 262 from sid's systemd-boot-efi (cached). */
export async function ensureStub(stub: Stub): Promise<string> {
  if (stub === "257") return join(await ensureChroot("trixie"), stubInPackage);
  const cached = readdirSync(cacheDir).find((name) => name.startsWith("stub-sid-") && existsSync(join(cacheDir, name, ".complete")));
  if (cached) return join(cacheDir, cached, stubInPackage);
  const version = aptCandidate("sid", "systemd-boot-efi");
  const dir = join(cacheDir, `stub-sid-${version}`);
  rmSync(`${dir}.partial`, { recursive: true, force: true });
  await timed(`download systemd-boot-efi ${version} (sid)`, () => aptExtract("sid", "systemd-boot-efi", version, `${dir}.partial`));
  writeFileSync(join(`${dir}.partial`, ".complete"), "");
  renameSync(`${dir}.partial`, dir);
  return join(dir, stubInPackage);
}

/**
 * Builds a UKI (kernel + initrd + command line) at OUT with ukify inside the trixie chroot.
 * @example await buildUki({ kernel, initrd, cmdline: "console=ttyS0 …", stub: "262", out })
 */
export async function buildUki(options: { kernel: string; initrd: string; cmdline: string; stub: Stub; out: string }): Promise<string> {
  const chroot = await ensureChroot("trixie");
  const stub = await ensureStub(options.stub);
  const work = join(chroot, "tmp/e2e-uki");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  copyFileSync(options.kernel, join(work, "vmlinuz"));
  copyFileSync(options.initrd, join(work, "initrd"));
  copyFileSync(stub, join(work, "stub"));
  writeFileSync(join(work, "cmdline"), options.cmdline);
  inChroot(chroot, "ukify build --linux=/tmp/e2e-uki/vmlinuz --initrd=/tmp/e2e-uki/initrd --cmdline=@/tmp/e2e-uki/cmdline " +
    "--stub=/tmp/e2e-uki/stub --os-release=@/etc/os-release --output=/tmp/e2e-uki/uki.efi >/dev/null");
  mkdirSync(join(options.out, ".."), { recursive: true });
  renameSync(join(work, "uki.efi"), options.out);
  rmSync(work, { recursive: true, force: true });
  return options.out;
}

