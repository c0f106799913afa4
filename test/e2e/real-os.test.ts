// A real operating system through netimport: Debian trixie with systemd as PID 1, from an ext4 `.raw.zst`,
// a `.tar.zst` and two systemd DDIs (an ext4 root partition with dm-verity and a signed verity-sig partition;
// a /usr-only image on a tmpfs root), on systemd 257 and 252 initrds. Each boot must reach
// multi-user.target with `systemctl is-system-running` = running, show a root that behaves like a disk
// (setuid, file capabilities, ACLs, xattrs; no nosuid/nodev/noexec on a tar root), and power off cleanly.
import assert from "node:assert/strict";
import { linkSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { say, fileSha256 } from "./lib/exec.ts";
import { assertFailedWithReason, openLab, type Lab } from "./lib/lab.ts";
import { assertRunningSystem, probeValue, type Mounts } from "./lib/probe.ts";
import { mib } from "./lib/initrd.ts";
import type { BootResult } from "./lib/qemu.ts";
import { ensureRealRoot, type RealRoot } from "./lib/real-root.ts";

let lab: Lab;
let root: RealRoot;
before(async () => {
  lab = await openLab("real-os");
  root = await ensureRealRoot();
  mkdirSync(join(lab.images.dir, "real"), { recursive: true });
  for (const file of Object.values(root.files)) {
    const served = join(lab.images.dir, "real", file.slice(root.dir.length + 1));
    rmSync(served, { force: true });
    linkSync(file, served);
  }
  say(`real root: ${mib(root.sizes.tree)} unpacked, ${mib(root.sizes.rawZst)} as .raw.zst, ${mib(root.sizes.tarZst)} as .tar.zst, ` +
    `DDIs ${mib(root.sizes.ddiRootZst)} (root) and ${mib(root.sizes.ddiUsrZst)} (/usr) as .raw.zst`);
});
after(async () => { await lab?.close(); });

/** A root that behaves like a disk: setuid, a file capability, an ACL and an xattr survive; a tar root has no nosuid/nodev/noexec. */
function assertRealSystem(result: BootResult, url: string, mounts: Mounts, tar = false, acls = true): void {
  assertRunningSystem(result, url, mounts);
  const root = probeValue(result, "ROOT");
  if (tar) assert.doesNotMatch(root, /(^|,| )no(suid|dev|exec)(,|$)/, `a tar root must behave like a disk: / is ${root}`);
  assert.match(probeValue(result, "SUID"), /euid=0\(root\)/, "a setuid-root program run by nobody did not get euid 0");
  assert.match(probeValue(result, "CAPS"), /cap_net_raw=ep/, "the file capability was lost");
  if (acls) assert.match(probeValue(result, "ACL"), /^user:nobody:r--/, "the ACL was lost");
  assert.equal(probeValue(result, "XATTR"), "kept", "the user xattr was lost");
}

/** The served path of a real-root file, and its verify=sha256: option. */
function served(file: string): { url: string; verify: string } {
  const path = `real/${file}`;
  return { url: lab.server.url(path), verify: `verify=sha256:${fileSha256(join(lab.images.dir, path))}` };
}

for (const [suite, type] of [["trixie", "raw"], ["trixie", "tar"], ["bookworm", "tar"]] as const) {
  test(`a Debian trixie root with systemd as PID 1, ${type === "raw" ? "ext4 .raw.zst" : ".tar.zst"}, reaches multi-user and powers off (${suite} initrd)`, async () => {
    const image = served(type === "raw" ? "root.raw.zst" : "root.tar.zst");
    const result = await lab.bootDirect({
      name: `real-${type}-${suite}`, suite, memoryMiB: 3072, timeoutSeconds: 600,
      cmdline: `rd.systemd.import=${type},root,rw,${image.verify}::${image.url}`,
    });
    assertRealSystem(result, image.url, { root: type === "raw" ? /^\/dev\/loop\d+ ext4 rw,/ : /^\S+ tmpfs rw,/ }, type === "tar");
  });
}

/** The certificate the DDIs are signed with, where systemd looks for it in the initrd. */
const trusted = () => ({ "etc/verity.d/netimport-e2e-verity.crt": readFileSync(root.verityCertificate) });

// A DDI root is read-only (dm-verity): systemd.volatile=state gives the booted system a writable /var.
for (const suite of ["trixie", "bookworm"] as const) {
  test(`a DDI (ext4 root, dm-verity, signed verity-sig partition) boots through netimport (${suite} initrd)`, async () => {
    const image = served("ddi-root.raw.zst");
    const result = await lab.bootDirect({
      name: `ddi-root-signed-${suite}`, suite, memoryMiB: 3072, timeoutSeconds: 600, extra: trusted(),
      cmdline: `rd.systemd.import=raw,root,${image.verify}::${image.url} systemd.volatile=state`,
    });
    assertRealSystem(result, image.url, { root: /^\/dev\/mapper\/netimport-root ext4 ro,/ });
    assert.match(probeValue(result, "VERITY"), /netimport-root/);
  });

}

// A /usr-only DDI boots on an empty tmpfs root: asked for with root=tmpfs (systemd's way, on 257), or
// found out by netimport attach itself when the image has no root partition (on 252).
for (const [suite, rootTmpfs] of [["trixie", true], ["bookworm", false]] as const) {
  test(`a /usr-only DDI (/usr as squashfs, usr-verity, usr-verity-sig) boots on a tmpfs root${rootTmpfs ? " with root=tmpfs" : ", without being told"} (${suite} initrd)`, async () => {
    const image = served("ddi-usr.raw.zst");
    const result = await lab.bootDirect({
      name: `ddi-usr-${rootTmpfs ? "root-tmpfs" : "auto"}-${suite}`, suite, memoryMiB: 3072, timeoutSeconds: 600, extra: trusted(),
      // The tests' usual init=/sbin/init is not on an empty root before switch-root makes /sbin a link
      // into /usr, and systemctl switch-root checks that init exists first: name the one in /usr.
      cmdline: `rd.systemd.import=raw,root,${image.verify}::${image.url}${rootTmpfs ? " root=tmpfs" : ""} init=/usr/lib/systemd/systemd`,
    });
    // squashfs keeps xattrs (the file capability) but no POSIX ACLs: Linux's squashfs has no ACL support.
    assertRealSystem(result, image.url, { root: /^\S+ tmpfs rw,/, usr: /^\/dev\/mapper\/netimport-usr squashfs ro,/ }, false, false);
  });
}

test("a DDI root pinned by roothash= on the kernel command line needs no certificate (trixie initrd)", async () => {
  const image = served("ddi-root.raw.zst");
  const result = await lab.bootDirect({
    name: "ddi-root-roothash", suite: "trixie", memoryMiB: 3072, timeoutSeconds: 600,
    cmdline: `rd.systemd.import=raw,root,${image.verify}::${image.url} roothash=${root.rootHashes.root} systemd.volatile=state`,
  });
  assertRealSystem(result, image.url, { root: /^\/dev\/mapper\/netimport-root ext4 ro,/ });
});

test("a verity-sig partition that no trusted certificate verifies stops the boot with a one-line reason", async () => {
  const image = served("ddi-root.raw.zst");
  const result = await lab.bootDirect({
    name: "ddi-root-untrusted", suite: "trixie", memoryMiB: 3072, timeoutSeconds: 300,
    extra: { "etc/verity.d/someone-else.crt": readFileSync(root.otherCertificate) },
    cmdline: `rd.systemd.import=raw,root,${image.verify}::${image.url} systemd.volatile=state`,
  });
  assertFailedWithReason(result, /verity.*(signature|certificate)|(signature|certificate).*verity/i);
});
