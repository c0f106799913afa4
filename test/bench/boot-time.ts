// Boot-time benchmark (npm run bench:boot): kernel start → switch-root with a 64 MiB and a 512 MiB root
// image downloaded by netimport, against curl alone downloading the same bytes in the same guest (a
// boot whose initrd runs curl after network-online, as netimport's pull does); the initrd size
// netimport adds; and a lazy root (the real trixie root as a DDI of ~314 MiB and of 2 GiB, served
// uncompressed and booted with `lazy`) against the same DDIs pulled whole from their .raw.zst first:
// kernel → switch-root, the lazy server's memory and copy at switch-root, and the background copy's
// throughput against a plain pull of the same uncompressed image. Reported, never asserted: timings
// belong in benchmarks, not tests.
// `--only=download` or `--only=lazy` runs one part.
import { linkSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { assertRootBooted, diagnosis, openLab, type Lab } from "../e2e/lib/lab.ts";
import { served } from "../e2e/lib/images.ts";
import { ensureNetimportLayer, mib } from "../e2e/lib/initrd.ts";
import { say } from "../e2e/lib/exec.ts";
import { hydration, lazyInitrdFiles, lazyMemory, lazyReport } from "../e2e/lib/lazy.ts";
import { probeValue } from "../e2e/lib/probe.ts";
import type { BootResult } from "../e2e/lib/qemu.ts";
import { ensureBigDdi, ensureRealRoot, serveRealRoot } from "../e2e/lib/real-root.ts";

const TARGET_OVERHEAD = 0.10;

/** Kernel start → switch-root with netimport's pull against curl alone, 64 and 512 MiB images. */
async function measureDownloads(lab: Lab): Promise<string[]> {
  const rows: string[] = [];
  for (const [size, path] of [[64, served.bench64], [512, served.bench512]] as const) {
    const curl = await lab.bootDirect({ name: `curl-${size}`, suite: "trixie", cmdline: `netimport_e2e.curl=${lab.server.url(path)}` });
    const curlStart = curl.uptimeAt("NETIMPORT-E2E-MARK curl-start");
    const curlEnd = curl.uptimeAt("NETIMPORT-E2E-MARK curl-end");
    if (curlStart === undefined || curlEnd === undefined) throw new Error(`curl boot failed:\n${diagnosis(curl)}`);

    const pull = await lab.bootDirect({ name: `netimport-${size}`, suite: "trixie", cmdline: `rd.systemd.import=raw,root,verify=no::${lab.server.url(path)}` });
    assertRootBooted(pull, `bench-${size}`);
    const switchRoot = pull.uptimeAt("NETIMPORT-E2E-MARK switch-root");
    const pullStart = pull.uptimeAt("NETIMPORT-E2E-MARK start netimport-pull-");
    const pullEnd = pull.uptimeAt("NETIMPORT-E2E-MARK end netimport-pull-");
    if (switchRoot === undefined || pullStart === undefined || pullEnd === undefined) throw new Error(`markers missing:\n${diagnosis(pull)}`);

    const curlSeconds = curlEnd - curlStart;
    const pullSeconds = pullEnd - pullStart;
    // Both boots are the same up to network-online, but that part jitters by seconds between boots on a
    // loaded machine; so compare from the download's start: netimport's pull + attach + mount +
    // switch-root against curl's download, relative to the whole curl boot (kernel start → curl done).
    const overhead = ((switchRoot - pullStart) - curlSeconds) / curlEnd;
    rows.push(
      `${size} MiB: kernel → switch-root ${switchRoot.toFixed(1)} s with netimport, kernel → curl done ${curlEnd.toFixed(1)} s; ` +
      `download: netimport ${pullSeconds.toFixed(1)} s (${(size / pullSeconds).toFixed(0)} MiB/s), curl ${curlSeconds.toFixed(1)} s ` +
      `(${(size / curlSeconds).toFixed(0)} MiB/s); overhead ${(overhead * 100).toFixed(0)} % ` +
      `(target ≤ ${TARGET_OVERHEAD * 100} %: ${overhead <= TARGET_OVERHEAD ? "PASS" : "MISS"}); ${(curl.lines("NETIMPORT-E2E-CURL-SHA256")[0] ?? "").trim()}`,
    );
  }
  return rows;
}

/** One DDI the lazy part boots: its served .raw and .raw.zst, its length, the guest memory it needs. */
type LazyImage = { label: string; raw: string; zst: string; bytes: number; memoryMiB: number };

/** Seconds, or "?" (a marker missing). */
const secs = (value: number | undefined): string => (value === undefined ? "?" : `${value.toFixed(1)} s`);
/** A / B, or "?" when either is missing. */
const ratio = (a: number | undefined, b: number | undefined): string =>
  (a === undefined || b === undefined || b === 0 ? "?" : `${(a / b).toFixed(2)}×`);

/** A boot that did not reach the probe, as one row: why, and where its log is. */
function failed(what: string, result: BootResult): string {
  const reason = result.lines(/netimport(?: attach| verity| lazy)?: /).at(-1)?.trim() ?? (result.timedOut ? "timed out" : "no probe report");
  return `${what}: FAILED (${reason}) — log ${result.logPath}`;
}

/**
 * A lazy root against a whole pull, for each DDI: kernel → switch-root both ways, the lazy server's RSS
 * and copy at switch-root; for the first DDI also the background copy's throughput (it waits for the
 * copy: netimport_e2e.lazy=wait) against `netimport pull` of the same uncompressed .raw in the same guest.
 */
async function measureLazy(lab: Lab): Promise<string[]> {
  const root = await ensureRealRoot();
  const big = await ensureBigDdi(root, 2048);
  const paths = serveRealRoot(lab.images.dir, root);
  for (const file of [big.raw, big.zst]) {
    const target = join(lab.images.dir, "real", file.split("/").at(-1) ?? "");
    rmSync(target, { force: true });
    linkSync(file, target);
  }
  // The 2 GiB image pulled whole needs its size in memory (netimport gives images up to half of it).
  const images: LazyImage[] = [
    { label: `${mib(root.sizes.ddiRootRaw)} DDI`, raw: paths.ddiRootRaw, zst: paths.ddiRootZst, bytes: root.sizes.ddiRootRaw, memoryMiB: 3072 },
    { label: `${mib(big.bytes)} DDI`, raw: "real/ddi-root-2048.raw", zst: "real/ddi-root-2048.raw.zst", bytes: big.bytes, memoryMiB: 5120 },
  ];
  const extra = { ...lazyInitrdFiles(), "etc/verity.d/netimport-e2e-verity.crt": readFileSync(root.verityCertificate) };
  const rows: string[] = [];
  for (const [index, image] of images.entries()) {
    const name = image.raw.split("/").at(-1)?.replace(/\.raw$/, "") ?? "ddi";
    const waitForCopy = index === 0;
    const lazy = await lab.bootDirect({
      name: `lazy-${name}`, suite: "trixie", memoryMiB: image.memoryMiB, timeoutSeconds: 1500, extra,
      cmdline: `rd.systemd.import=raw,root,lazy,verify=no::${lab.server.url(image.raw)} systemd.volatile=state netimport_e2e.lazy=${waitForCopy ? "wait" : "now"}`,
    });
    const whole = await lab.bootDirect({
      name: `whole-${name}-zst`, suite: "trixie", memoryMiB: image.memoryMiB, timeoutSeconds: 1500, extra,
      cmdline: `rd.systemd.import=raw,root,verify=no::${lab.server.url(image.zst)} systemd.volatile=state`,
    });
    const lazySwitch = lazy.uptimeAt("NETIMPORT-E2E-MARK switch-root");
    const wholeSwitch = whole.uptimeAt("NETIMPORT-E2E-MARK switch-root");
    if (!probeValue(lazy, "SYSTEM")) rows.push(failed(`${image.label} lazy`, lazy));
    if (!probeValue(whole, "SYSTEM")) rows.push(failed(`${image.label} pulled whole (.raw.zst)`, whole));
    const memory = lazyMemory(lazy);
    rows.push(
      `${image.label}: kernel → switch-root ${secs(lazySwitch)} lazy, ${secs(wholeSwitch)} pulled whole from .raw.zst ` +
      `(lazy takes ${ratio(lazySwitch, wholeSwitch)} the time); at switch-root the lazy server has ` +
      (memory ? `${(memory.rssKb / 1024).toFixed(0)} MiB resident, its copy ${(memory.copyKb / 1024).toFixed(0)} MiB of ${mib(memory.copyBytes)} in /run` : "no LAZY-MEMORY line") +
      `; background copy: ${hydration(lazy)?.line.replace(/^.*netimport lazy: /, "") ?? "not complete when the probe reported"}`,
    );
    if (!waitForCopy) continue;
    const copy = hydration(lazy);
    const report = lazyReport(lazy);
    const pull = await lab.bootDirect({
      name: `whole-${name}-raw`, suite: "trixie", memoryMiB: image.memoryMiB, timeoutSeconds: 1500, extra,
      cmdline: `rd.systemd.import=raw,root,verify=no::${lab.server.url(image.raw)} systemd.volatile=state`,
    });
    const pullStart = pull.uptimeAt("NETIMPORT-E2E-MARK start netimport-pull-");
    const pullEnd = pull.uptimeAt("NETIMPORT-E2E-MARK end netimport-pull-");
    const pullMbPerSecond = pullStart !== undefined && pullEnd !== undefined ? image.bytes / 1e6 / (pullEnd - pullStart) : undefined;
    rows.push(
      `${image.label} copied in the background (lazy): ${copy ? `${copy.mbPerSecond} MB/s in ${copy.seconds} s` : "no copy-complete line"}; ` +
      `netimport pull of the same .raw: ${pullMbPerSecond === undefined ? `markers missing (log ${pull.logPath})` : `${pullMbPerSecond.toFixed(1)} MB/s in ${((pullEnd ?? 0) - (pullStart ?? 0)).toFixed(1)} s`}; ` +
      `lazy/pull ${ratio(copy?.mbPerSecond, pullMbPerSecond)}; after the copy: ${report?.line ?? "no LAZY line"}`,
    );
  }
  return rows;
}

async function main(): Promise<void> {
  const only = process.argv.find((arg) => arg.startsWith("--only="))?.slice("--only=".length);
  const { bytes } = await ensureNetimportLayer(15);
  const fast = await ensureNetimportLayer(3);
  const rows: string[] = [
    `initrd size added by netimport (dist/tree as a cpio): ${mib(bytes)} at zstd -15 (dracut's --compress zstd), ${mib(fast.bytes)} at zstd -3`,
  ];
  const lab = await openLab("measure");
  try {
    if (only !== "lazy") rows.push(...await measureDownloads(lab));
    if (only !== "download") rows.push(...await measureLazy(lab));
  } finally {
    await lab.close();
  }
  say("Boot-time benchmark (QEMU TCG guest, trixie initrd):");
  for (const row of rows) say(`  ${row}`);
}

await main();
