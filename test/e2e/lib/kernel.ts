// The Debian kernel the guests boot (trixie's, 6.12): downloaded once, its modules copied into each chroot.
import { cpSync, existsSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cacheDir } from "./paths.ts";
import { aptCandidate, aptExtract, aptFirstDependency } from "./apt.ts";
import { run, timed } from "./exec.ts";

export type Kernel = { version: string; vmlinuz: string; modules: string };

/** Finds a cached kernel, or downloads the package trixie's linux-image-amd64 depends on. */
export async function ensureKernel(): Promise<Kernel> {
  const cached = readdirSync(cacheDir).find((name) => name.startsWith("kernel-") && existsSync(join(cacheDir, name, ".complete")));
  if (cached) return kernelIn(join(cacheDir, cached));
  const pkg = aptFirstDependency("trixie", "linux-image-amd64");
  const dir = join(cacheDir, `kernel-${pkg}`);
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  await timed(`download ${pkg}`, () => aptExtract("trixie", pkg, aptCandidate("trixie", pkg), partial));
  writeFileSync(join(partial, ".complete"), `${pkg}\n`);
  renameSync(partial, dir);
  return kernelIn(dir);
}

function kernelIn(dir: string): Kernel {
  const version = readdirSync(join(dir, "usr/lib/modules"))[0];
  if (!version) throw new Error(`no modules in ${dir}`);
  return { version, vmlinuz: join(dir, "boot", `vmlinuz-${version}`), modules: join(dir, "usr/lib/modules", version) };
}

/** Copies the kernel's modules into a chroot and runs depmod there (once per chroot and kernel). */
export function installKernelModules(chroot: string, kernel: Kernel): void {
  const target = join(chroot, "usr/lib/modules", kernel.version);
  if (existsSync(join(target, "modules.dep"))) return;
  cpSync(kernel.modules, target, { recursive: true });
  run("chroot", [chroot, "depmod", "-a", kernel.version]);
}
