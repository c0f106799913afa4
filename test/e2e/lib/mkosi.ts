// Builds integrations/mkosi (the mkosi example) with trixie's mkosi inside the chroot (cached by the example's files and
// the netimport executable). mkosi also writes the UKI's kernel and initrd as separate files.
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { cacheDir, debianMirror, distTree, integrationsDir, repoRoot } from "./paths.ts";
import { cacheKey, fileSha256, folderFingerprint, timed } from "./exec.ts";
import { ensureChroot, inChroot } from "./chroot.ts";
import { waitForBuild } from "./initrd.ts";

export type MkosiBuild = { uki: string; vmlinuz: string; initrd: string };

/**
 * The example's build outputs. The example's ExtraTrees= points at the repository's dist/tree.
 * @example const { vmlinuz, initrd } = await ensureMkosiBuild()
 */
export async function ensureMkosiBuild(): Promise<MkosiBuild> {
  const example = join(integrationsDir, "mkosi");
  // The example's ExtraTrees= names the repository's dist/tree.
  const exe = await waitForBuild(join(repoRoot, "dist/tree/usr/lib/netimport/netimport"));
  const dir = join(cacheDir, `mkosi-${cacheKey(folderFingerprint(example), fileSha256(exe), distTree)}`);
  const outputs = { uki: join(dir, "netimport-boot.efi"), vmlinuz: join(dir, "netimport-boot.vmlinuz"), initrd: join(dir, "netimport-boot.initrd") };
  if (existsSync(outputs.uki)) return outputs;
  const chroot = await ensureChroot("trixie");
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  // --local-mirror: only the main archive (this machine's mirror has no debian-debug suite).
  await timed("mkosi build (integrations/mkosi)", () => inChroot(chroot,
    `cd ${example} && mkosi --local-mirror=${debianMirror} --output-dir=${partial} ` +
    `--cache-directory=${join(cacheDir, "mkosi-cache")} --workspace-directory=/var/tmp -f build`, {}, [repoRoot]));
  renameSync(partial, dir);
  return outputs;
}
