// A real operating system through netimport: Debian trixie with systemd as PID 1, from an ext4 `.raw.zst`
// and from a `.tar.zst`, on systemd 257 and 252 initrds. Each boot must reach multi-user.target with
// `systemctl is-system-running` = running, show a root that behaves like a disk (setuid, file
// capabilities, ACLs, xattrs; no nosuid/nodev/noexec on a tar root), and power off cleanly.
import assert from "node:assert/strict";
import { linkSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { say, fileSha256 } from "./lib/exec.ts";
import { diagnosis, openLab, type Lab } from "./lib/lab.ts";
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
  say(`real root: ${mib(root.sizes.tree)} unpacked, ${mib(root.sizes.rawZst)} as .raw.zst, ${mib(root.sizes.tarZst)} as .tar.zst`);
});
after(async () => { await lab?.close(); });

/** The value after `NETIMPORT-E2E-<key> ` in the probe's report. */
function probe(result: BootResult, key: string): string {
  return result.lines(`NETIMPORT-E2E-${key} `)[0]?.replace(/^.*NETIMPORT-E2E-\S+ /, "").trim() ?? "";
}

/** The kernel's timestamp of a console line, in seconds. */
function kernelTime(result: BootResult, text: string): number | undefined {
  const line = result.lines(text).at(-1);
  const value = line ? /^\[\s*([\d.]+)\]/.exec(line)?.[1] : undefined;
  return value === undefined ? undefined : Number(value);
}

function assertRealSystem(result: BootResult, tar: boolean, url: string): void {
  const state = probe(result, "SYSTEM");
  assert.match(state, /^state=running /, `is-system-running: '${state}'; failed units: ${result.lines("NETIMPORT-E2E-FAILED-UNIT").join(", ")}\n${diagnosis(result)}`);
  const options = probe(result, "ROOT-OPTIONS");
  if (tar) assert.doesNotMatch(options, /(^|,)no(suid|dev|exec)(,|$)/, `a tar root must behave like a disk: / is ${options}`);
  assert.match(probe(result, "SUID"), /euid=0\(root\)/, "a setuid-root program run by nobody did not get euid 0");
  assert.match(probe(result, "CAPS"), /cap_net_raw=ep/, "the file capability was lost");
  assert.match(probe(result, "ACL"), /^user:nobody:r--/, "the ACL was lost");
  assert.equal(probe(result, "XATTR"), "kept", "the user xattr was lost");
  assert.equal(probe(result, "SOURCE-URL"), url, "the pull did not leave user.source_url on the image");
  const poweroff = result.uptimeAt("NETIMPORT-E2E-POWEROFF");
  const down = kernelTime(result, "reboot: Power down");
  assert.ok(!result.timedOut && down !== undefined, `no power-down after systemctl poweroff\n${result.tail(30)}`);
  const switchRoot = result.uptimeAt("NETIMPORT-E2E-MARK switch-root");
  const running = result.uptimeAt("NETIMPORT-E2E-SYSTEM");
  say(`${result.logPath.split("/").at(-1)}: kernel → switch-root ${switchRoot?.toFixed(1)} s, → multi-user (running) ${running?.toFixed(1)} s, ` +
    `poweroff → power-down ${poweroff === undefined ? "?" : (down - poweroff).toFixed(1)} s`);
}

for (const [suite, type] of [["trixie", "raw"], ["trixie", "tar"], ["bookworm", "tar"]] as const) {
  test(`a Debian trixie root with systemd as PID 1, ${type === "raw" ? "ext4 .raw.zst" : ".tar.zst"}, reaches multi-user and powers off (${suite} initrd)`, async () => {
    const file = type === "raw" ? "real/root.raw.zst" : "real/root.tar.zst";
    const hash = fileSha256(join(lab.images.dir, file));
    const result = await lab.bootDirect({
      name: `real-${type}-${suite}`, suite, memoryMiB: 3072, timeoutSeconds: 600,
      cmdline: `rd.systemd.import=${type},root,rw,verify=sha256:${hash}::${lab.server.url(file)}`,
    });
    assertRealSystem(result, type === "tar", lab.server.url(file));
  });
}
