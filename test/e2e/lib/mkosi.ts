// Builds the mkosi examples with trixie's mkosi inside the chroot: integrations/mkosi, a UKI with
// netimport in its initrd (cached by the example's files and the netimport executable; mkosi also writes
// the UKI's kernel and initrd as separate files), and integrations/mkosi-image, the OS as a signed DDI.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cacheDir, debianMirror, distTree, integrationsDir, repoRoot } from "./paths.ts";
import { cacheKey, fileSha256, folderFingerprint, timed } from "./exec.ts";
import { ensureChroot, inChroot } from "./chroot.ts";
import { waitForBuild } from "./initrd.ts";
import { certificate, signedRootHash, writeProbe } from "./real-root.ts";

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

export type MkosiImage = { raw: string; certificate: string; rootHash: string };

/**
 * The DDI integrations/mkosi-image builds (with PROFILE "usr-only": /usr only), signed with a key made
 * here, with the boot tests' probe as an extra tree (and getfattr, which it uses); cached by the example's files.
 * @example const { raw, certificate } = await ensureMkosiImage("root")
 */
export async function ensureMkosiImage(profile: "root" | "usr-only"): Promise<MkosiImage> {
  const example = join(integrationsDir, "mkosi-image");
  const dir = join(cacheDir, `mkosi-image-${profile}-${cacheKey(folderFingerprint(example), readFileSync(fileURLToPath(import.meta.url)))}`);
  const output = profile === "root" ? "image.raw" : "image-usr.raw";
  const image = { raw: join(dir, output), certificate: join(dir, "signer.crt") };
  if (existsSync(join(dir, ".complete"))) return { ...image, rootHash: readFileSync(join(dir, "root-hash"), "utf8") };
  const chroot = await ensureChroot("trixie");
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(join(partial, "probe"), { recursive: true });
  certificate(partial, "signer");
  writeProbe(join(partial, "probe"));
  await timed(`mkosi build (integrations/mkosi-image, ${profile})`, () => inChroot(chroot,
    `cd ${example} && mkosi ${profile === "usr-only" ? "--profile=usr-only " : ""}--local-mirror=${debianMirror} ` +
    `--verity-key=${partial}/signer.key --verity-certificate=${partial}/signer.crt --extra-tree=${partial}/probe --package=attr ` +
    `--output-dir=${partial} --cache-directory=${join(cacheDir, "mkosi-cache")} --workspace-directory=/var/tmp -f build`,
    {}, [repoRoot]));
  writeFileSync(join(partial, "root-hash"), signedRootHash(join(partial, output)));
  writeFileSync(join(partial, ".complete"), "");
  renameSync(partial, dir);
  return { raw: join(dir, output), certificate: join(dir, "signer.crt"), rootHash: readFileSync(join(dir, "root-hash"), "utf8") };
}
