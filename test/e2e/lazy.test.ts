// A lazy root (rd.systemd.import=raw,root,lazy,verify=no::URL): the real trixie root as an uncompressed DDI
// (ext4 root, dm-verity, signed verity-sig) booted WITHOUT downloading it first. netimport serves the image
// to the kernel's NBD driver from HTTP Range requests, dm-verity checks every block, and the whole image is
// copied to /run meanwhile; once complete, the device-mapper devices switch to a loop device over the copy.
// Scenarios: power off while still served (the server slow in a stretch no boot reads, so the copy
// cannot end first); a 20 s server outage after switch-root during the copy, which completes; a flipped byte in one file's
// data block, refused by dm-verity (the rest boots); an image without verity, refused. Each is one boot;
// the probe in the root (lib/real-root.ts) reports on the serial console.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { say } from "./lib/exec.ts";
import { assertFailedWithReason, diagnosis, openLab, type Lab } from "./lib/lab.ts";
import {
  assertHydrated, assertNoBlockErrors, assertStillServed, copyComplete, hydration, lazyInitrdFiles, lazyLines, lineOrder, whenConsoleSays, signChecksum,
} from "./lib/lazy.ts";
import { assertRunningSystem, probeValue } from "./lib/probe.ts";
import { mib, type ExtraFiles } from "./lib/initrd.ts";
import type { BootResult } from "./lib/qemu.ts";
import { ensureRealRoot, serveRealRoot, type RealRoot } from "./lib/real-root.ts";

let lab: Lab;
let root: RealRoot;
let paths: RealRoot["files"];
before(async () => {
  lab = await openLab("lazy");
  root = await ensureRealRoot();
  paths = serveRealRoot(lab.images.dir, root);
  say(`lazy root: ddi-root.raw ${mib(root.sizes.ddiRootRaw)} (served uncompressed), canary block at byte ${root.canary.blockOffset} ` +
    `(root partition block ${root.canary.dataBlock}), flipped at ${root.canary.flippedOffset} in ddi-root-corrupt.raw`);
});
after(async () => { await lab?.close(); });

/** The certificate the DDI is signed with, where systemd looks for it in the initrd. */
const trusted = (): ExtraFiles => ({ "etc/verity.d/netimport-e2e-verity.crt": readFileSync(root.verityCertificate) });

/** The root on dm-verity over the lazily served partition, read-only (systemd.volatile=state gives it a writable /var). */
const verityRoot = { root: /^\/dev\/mapper\/netimport-root ext4 ro,/ };

/**
 * The guest copies faster than it boots (~25 MB/s): 64 KiB of the root file system's free space, which no
 * boot reads, are served at 4 KiB/s, so the background copy (which reads every byte) cannot end before
 * the poweroff, while the boot's own reads go at full speed. Until the boot ends (bootDirect's finally).
 */
function holdBackCopy(path: string): void {
  lab.server.slow({ path, start: root.unread.offset, end: root.unread.offset + root.unread.length, bytesPerSecond: 4096 });
}

/** The lazy boot's timeline on the harness's output: device connected, switch-root, running, copy done, power-down. */
function sayTimes(result: BootResult): void {
  const connected = result.uptimeAt("NETIMPORT-E2E-MARK end netimport-lazy-");
  const switchRoot = result.uptimeAt("NETIMPORT-E2E-MARK switch-root");
  const running = result.uptimeAt("NETIMPORT-E2E-SYSTEM");
  const copied = hydration(result);
  say(`${result.logPath.split("/").at(-1)}: kernel → NBD device connected ${connected?.toFixed(1) ?? "?"} s, → switch-root ` +
    `${switchRoot?.toFixed(1) ?? "?"} s, → running ${running?.toFixed(1) ?? "?"} s; ` +
    (copied ? `copy complete in ${copied.seconds} s (${copied.mbPerSecond} MB/s)` : "copy not complete at poweroff"));
}

test("an image without verity and without verify=no is refused for a lazy root, with a one-line reason", async () => {
  // Signed, so that verify=signature (the default) is satisfied and only the missing verity is wrong.
  signChecksum(lab.images, paths.raw);
  const url = lab.server.url(paths.raw);
  const result = await lab.bootDirect({
    name: "lazy-no-verity", suite: "trixie", memoryMiB: 3072, timeoutSeconds: 240, extra: lazyInitrdFiles(),
    cmdline: `rd.systemd.import=raw,root,lazy::${url}`,
  });
  assertFailedWithReason(result, /verity/i);
  // Refused from the partition table (a few Range reads), not after serving or copying the image.
  const served = lab.server.log.filter((r) => r.path === paths.raw).reduce((sum, r) => sum + r.bytes, 0);
  say(`lazy-no-verity: ${mib(served)} of ${mib(root.sizes.raw)} served before the refusal`);
  assert.ok(served < root.sizes.raw / 4, `${mib(served)} of the image were served before the refusal`);
});

test("a lazy DDI root boots to multi-user before its copy is complete, and powers off cleanly while still served", async () => {
  const url = lab.server.url(paths.ddiRootRaw);
  holdBackCopy(paths.ddiRootRaw);
  const result = await lab.bootDirect({
    name: "lazy-poweroff-served", suite: "trixie", memoryMiB: 3072, timeoutSeconds: 600, extra: { ...lazyInitrdFiles(), ...trusted() },
    cmdline: `rd.systemd.import=raw,root,lazy,verify=no::${url} systemd.volatile=state netimport_e2e.lazy=now`,
  }).finally(() => lab.server.slow(undefined));
  sayTimes(result);
  assertRunningSystem(result, url, verityRoot, { sourceUrl: false });
  assert.match(probeValue(result, "VERITY"), /netimport-root/);
  assert.ok(lazyLines(result, /serving/).length > 0, `no "netimport lazy: serving" line\n${diagnosis(result)}`);
  assertStillServed(result);
  assert.equal(probeValue(result, "CANARY"), "ok", "the canary did not read back whole through NBD and dm-verity");
  assertNoBlockErrors(result);
});

test("a lazy DDI root with a flipped byte in one file's data block: dm-verity refuses that block as read over NBD, the rest boots", async () => {
  const url = lab.server.url(paths.ddiRootCorruptRaw);
  // The canary is read while the image is still served (the copy held back), as a block fetched on demand.
  holdBackCopy(paths.ddiRootCorruptRaw);
  const result = await lab.bootDirect({
    name: "lazy-corrupt-block", suite: "trixie", memoryMiB: 3072, timeoutSeconds: 600, extra: lazyInitrdFiles(),
    // Pinned by the original's root hash: the corrupt copy has the same hash tree (and signature).
    cmdline: `rd.systemd.import=raw,root,lazy,verify=no::${url} roothash=${root.rootHashes.root} systemd.volatile=state netimport_e2e.lazy=now`,
  }).finally(() => lab.server.slow(undefined));
  sayTimes(result);
  assertRunningSystem(result, url, verityRoot, { sourceUrl: false });
  assert.match(probeValue(result, "CANARY"), /Input\/output error/, "reading the corrupted file did not fail with EIO");
  const refused = result.lines(/device-mapper: verity: .*data block \d+ is corrupted/);
  assert.ok(refused.length > 0, `no dm-verity "data block … is corrupted" line\n${diagnosis(result)}`);
  assert.ok(refused.some((line) => line.includes(`data block ${root.canary.dataBlock} `)),
    `dm-verity refused other blocks than the canary's (${root.canary.dataBlock}): ${refused.join(" | ")}`);
  assertStillServed(result);
});

test("a lazy DDI root survives a 20 s server outage after switch-root during its copy; the copy completes, takes over, and the system powers off cleanly", async () => {
  const url = lab.server.url(paths.ddiRootRaw);
  const name = "lazy-outage-hydrated";
  // The copy is held back until the system has switched root; then the server goes away for 20 s (from
  // the next byte it serves) and comes back at full speed: the running system reads through the
  // served device meanwhile, and the copy resumes.
  holdBackCopy(paths.ddiRootRaw);
  const stop = whenConsoleSays([join(lab.work, `${name}.serial.log`), join(lab.work, `${name}-again.serial.log`)], "NETIMPORT-E2E-MARK switch-root", () => {
    lab.server.armOutage({ path: paths.ddiRootRaw, afterTotalBytes: 0, downMs: 20_000 });
    lab.server.slow(undefined);
  });
  const result = await lab.bootDirect({
    name, suite: "trixie", memoryMiB: 3072, timeoutSeconds: 900, extra: { ...lazyInitrdFiles(), ...trusted() },
    cmdline: `rd.systemd.import=raw,root,lazy,verify=no::${url} systemd.volatile=state netimport_e2e.lazy=wait`,
  }).finally(() => {
    stop();
    lab.server.slow(undefined);
  });
  await lab.server.outageDone();
  sayTimes(result);
  const [outage] = lab.server.outages;
  assert.ok(outage?.ended !== undefined, `the server never went down: ${mib(lab.server.log.filter((r) => r.path === paths.ddiRootRaw).reduce((sum, r) => sum + r.bytes, 0))} served`);
  say(`lazy-outage-hydrated: server down ${((outage.ended - outage.began) / 1000).toFixed(1)} s after ${mib(outage.servedBytes)} served, ` +
    `${result.seconds.toFixed(0)} s boot; ${lazyLines(result).length} "netimport lazy:" lines`);
  assertRunningSystem(result, url, verityRoot, { sourceUrl: false });
  const [switchRoot, down, back, copied, switched] = lineOrder(result, /NETIMPORT-E2E-MARK switch-root/,
    /netimport lazy: .*retrying; reads of blocks not yet local wait/, /netimport lazy: .*answers again/, copyComplete, /netimport lazy: switched .*local copy/);
  assert.ok(down !== undefined && switchRoot !== undefined && down > switchRoot, `the outage did not hit after switch-root\n${lazyLines(result).join("\n")}`);
  assert.ok(down !== undefined && down >= 0, `no "netimport lazy: … does not answer" line during the outage\n${lazyLines(result).join("\n")}`);
  assert.ok(back !== undefined && back > down, `no "netimport lazy: … answers again" line after the outage\n${lazyLines(result).join("\n")}`);
  assert.ok(copied !== undefined && copied > back, `no "netimport lazy: hydrated|copied … (… MB/s)" line after the outage\n${lazyLines(result).join("\n")}`);
  assert.ok(switched !== undefined && switched >= 0, `no "netimport lazy: switched … to the local copy" line\n${lazyLines(result).join("\n")}`);
  assertHydrated(result);
  assert.equal(probeValue(result, "CANARY"), "ok", "the canary did not read back whole");
  assert.equal(probeValue(result, "CANARY-LOCAL"), "ok", "the canary did not read back whole from the local copy");
  assertNoBlockErrors(result);
});
