// The mkosi examples: integrations/mkosi/ (a UKI with netimport in its initrd) must be accepted by
// trixie's mkosi 25.3, build, and boot a downloaded root; integrations/mkosi-image/ (the OS as a signed
// DDI, with a root partition or /usr only) must build and boot through that initrd to a running system.
import assert from "node:assert/strict";
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { test } from "node:test";
import { ensureChroot, inChroot } from "./lib/chroot.ts";
import { distTree, integrationsDir, repoRoot } from "./lib/paths.ts";
import { fileSha256, say } from "./lib/exec.ts";
import { ensureMkosiBuild, ensureMkosiImage } from "./lib/mkosi.ts";
import { assertRunningSystem } from "./lib/probe.ts";
import { ensureImages, served } from "./lib/images.ts";
import { serveFolder } from "./lib/http-server.ts";
import { boot, type BootResult } from "./lib/qemu.ts";
import { baseCmdline, diagnosis } from "./lib/lab.ts";
import { concatInitrd, e2eLayer, mib } from "./lib/initrd.ts";
import { cacheDir } from "./lib/paths.ts";
import { statSync } from "node:fs";

test("mkosi 25.3 (trixie) accepts the example configuration: mkosi summary", async () => {
  assert.ok(existsSync(join(distTree, "usr/lib/netimport/netimport")), "dist/tree is missing: run `npm run build` first");
  const chroot = await ensureChroot("trixie");
  const example = join(integrationsDir, "mkosi");
  const summary = inChroot(chroot, `cd ${example} && mkosi --version && mkosi summary`, {}, [repoRoot]);
  say(`mkosi summary: ${summary.split("\n").filter((line) => /^mkosi |Output Format|Release:|Make Initrd/.test(line)).map((l) => l.trim()).join("; ")}`);
  assert.match(summary, /^mkosi 25\.3/);
  assert.match(summary, /Output Format:\s+uki\n/);
  assert.match(summary, /Make Initrd:\s+yes\n/);
  assert.ok(/Extra Trees:/.test(summary) && summary.includes(` ${repoRoot}/dist/tree\n`), "ExtraTrees= does not point at dist/tree");
  assert.match(summary, /rd\.systemd\.import=raw,root,verify=signature,bootorigin::image\.raw\.xz/);
});

test("mkosi builds the example, and its initrd (with netimport from ExtraTrees=) boots a downloaded root", async () => {
  const build = await ensureMkosiBuild();
  say(`mkosi UKI ${mib(statSync(build.uki).size)}, initrd ${mib(statSync(build.initrd).size)}`);
  const images = await ensureImages();
  const server = await serveFolder(images.dir);
  try {
    // The UKI's own command line uses bootorigin, which needs systemd-stub 262; trixie's mkosi packs
    // stub 257. So boot the UKI's kernel and initrd directly with the image's full URL instead.
    const cmdline = `rd.systemd.import=raw,root,verify=sha256:${images.sha256(served.ext4Zst)}::${server.url(served.ext4Zst)}`;
    // The test overlay (emergency marker and power-off) rides along as a second initrd archive.
    const work = join(cacheDir, "runs", "mkosi");
    const initrd = concatInitrd([build.initrd, e2eLayer(work)], join(work, "initrd.img"));
    const result = await boot({ kind: "direct", kernel: build.vmlinuz, initrd, name: "mkosi-initrd",
      work, cmdline: `${baseCmdline} ${cmdline}`, timeoutSeconds: 180 });
    say(`mkosi initrd boot: ${result.seconds.toFixed(1)} s — log ${result.logPath}`);
    assert.ok(result.lines("NETIMPORT-E2E-ROOT-OK ext4-zst").length > 0, `the mkosi initrd did not boot the image:\n${diagnosis(result)}`);
  } finally {
    await server.close();
  }
});

/**
 * Boots the mkosi UKI's kernel and initrd (netimport from ExtraTrees=) into a DDI built by
 * integrations/mkosi-image, with the image's signing certificate in the initrd's /etc/verity.d.
 */
async function bootMkosiImage(profile: "root" | "usr-only", extraCmdline: string): Promise<{ result: BootResult; url: string }> {
  const [build, image, images] = await Promise.all([ensureMkosiBuild(), ensureMkosiImage(profile), ensureImages()]);
  const served = `mkosi-image/${basename(image.raw)}`;
  mkdirSync(join(images.dir, "mkosi-image"), { recursive: true });
  rmSync(join(images.dir, served), { force: true });
  linkSync(image.raw, join(images.dir, served));
  const server = await serveFolder(images.dir);
  try {
    const url = server.url(served);
    const work = join(cacheDir, "runs", "mkosi");
    const layer = e2eLayer(join(work, `image-${profile}`), { "etc/verity.d/mkosi-image.crt": readFileSync(image.certificate) });
    const initrd = concatInitrd([build.initrd, layer], join(work, `initrd-${profile}.img`));
    const cmdline = `${baseCmdline} rd.systemd.import=raw,root,verify=sha256:${fileSha256(image.raw)}::${url} ${extraCmdline}`;
    say(`boot mkosi-image-${profile} (mkosi initrd, ${mib(statSync(image.raw).size)} DDI): ${cmdline}`);
    const result = await boot({ kind: "direct", kernel: build.vmlinuz, initrd, name: `mkosi-image-${profile}`, work, cmdline, memoryMiB: 3072, timeoutSeconds: 600 });
    return { result, url };
  } finally {
    await server.close();
  }
}

test("mkosi builds a signed DDI (erofs root, dm-verity, verity-sig) that boots through netimport to a running system", async () => {
  const { result, url } = await bootMkosiImage("root", "systemd.volatile=state");
  assertRunningSystem(result, url, { root: /^\/dev\/mapper\/netimport-root erofs ro,/ });
});

test("mkosi --profile=usr-only builds a /usr-only DDI that boots on a tmpfs root (root=tmpfs)", async () => {
  const { result, url } = await bootMkosiImage("usr-only", "root=tmpfs init=/usr/lib/systemd/systemd");
  assertRunningSystem(result, url, { root: /^\S+ tmpfs rw,/, usr: /^\/dev\/mapper\/netimport-usr erofs ro,/ });
});
