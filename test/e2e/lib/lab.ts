// The boot lab the scenarios share: kernel, layered initrds, served images, one HTTP server, and two ways
// to boot (direct kernel boot, UEFI HTTP boot of a UKI), with assertions on the serial log.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { cacheDir } from "./paths.ts";
import { say } from "./exec.ts";
import type { Suite } from "./chroot.ts";
import { concatInitrd, e2eLayer, ensureBaseInitrd, ensureNetimportLayer, mib, type ExtraFiles } from "./initrd.ts";
import { ensureImages, linkInto, type Images } from "./images.ts";
import { serveFolder, type FileServer } from "./http-server.ts";
import { boot, type BootOptions, type BootResult } from "./qemu.ts";
import { buildUki, type Stub } from "./uki.ts";

export type Lab = {
  images: Images;
  server: FileServer;
  work: string;
  /** Boots the kernel directly with the suite's initrd and CMDLINE (the common console options are added). */
  bootDirect: (options: BootRequest) => Promise<BootResult>;
  /** Builds a UKI (suite initrd, CMDLINE, STUB), serves it and boots it through OVMF's HTTP boot. */
  bootUefi: (options: BootRequest & { stub: Stub; images?: Record<string, string> }) => Promise<BootResult>;
  close: () => Promise<void>;
};

export type BootRequest = { name: string; suite: Suite; cmdline: string; extra?: ExtraFiles; memoryMiB?: number; timeoutSeconds?: number };

/** Console and switch-root options every test boot uses; scenarios add the netimport part. */
export const baseCmdline = "console=ttyS0 panic=-1 init=/sbin/init systemd.show_status=1 rd.systemd.show_status=1";

/**
 * Prepares everything (cached) and starts the image server.
 * @example const lab = await openLab("direct"); const r = await lab.bootDirect({ … }); await lab.close();
 */
export async function openLab(runName: string): Promise<Lab> {
  const images = await ensureImages();
  const netimport = await ensureNetimportLayer();
  const server = await serveFolder(images.dir);
  const keyring = readFileSync(images.keyring);
  const work = join(cacheDir, "runs", runName);
  mkdirSync(work, { recursive: true });
  say(`serving ${images.dir} at http://127.0.0.1:${server.port}/ (guest: ${server.url("")}); logs in ${work}`);

  async function initrdFor(request: BootRequest): Promise<{ initrd: string; kernel: string }> {
    const base = await ensureBaseInitrd(request.suite);
    const layer = e2eLayer(join(work, request.name), { "etc/systemd/import-pubring.pgp": keyring, ...request.extra });
    const initrd = concatInitrd([base.path, netimport.path, layer], join(work, request.name, "initrd.img"));
    return { initrd, kernel: base.kernel.vmlinuz };
  }

  return {
    images, server, work,
    bootDirect: async (request) => {
      const { initrd, kernel } = await initrdFor(request);
      const cmdline = `${baseCmdline} ${request.cmdline}`;
      say(`boot ${request.name} (${request.suite}, direct): ${request.cmdline}`);
      const result = await bootOnceMore({ kind: "direct", kernel, initrd, cmdline, name: request.name, work,
        ...(request.memoryMiB ? { memoryMiB: request.memoryMiB } : {}),
        ...(request.timeoutSeconds ? { timeoutSeconds: request.timeoutSeconds } : {}) });
      report(request.name, result);
      return result;
    },
    bootUefi: async (request) => {
      const { initrd, kernel } = await initrdFor(request);
      const ukiDir = `uki-${request.name}`;
      const uki = await buildUki({ kernel, initrd, cmdline: `${baseCmdline} ${request.cmdline}`, stub: request.stub,
        out: join(images.dir, ukiDir, "boot.efi") });
      for (const [name, from] of Object.entries(request.images ?? {})) linkInto(images, from, ukiDir, name);
      say(`boot ${request.name} (${request.suite}, UEFI HTTP, stub ${request.stub}, UKI ${mib(statSync(uki).size)}): ${request.cmdline}`);
      const result = await bootOnceMore({ kind: "uefi-http", bootUrl: server.url(`${ukiDir}/boot.efi`), name: request.name, work,
        ...(request.memoryMiB ? { memoryMiB: request.memoryMiB } : {}), timeoutSeconds: request.timeoutSeconds ?? 240 });
      report(request.name, result);
      return result;
    },
    close: () => server.close(),
  };
}

/**
 * Boots, and boots once more when the kernel panicked before it ran the initrd: under TCG with two
 * CPUs about one boot in seven dies in text patching (`Oops: int3` in sched_clock_cpu, shared/boot-lab.md),
 * which says nothing about netimport. Any other failure counts.
 */
async function bootOnceMore(options: BootOptions): Promise<BootResult> {
  const first = await boot(options);
  const panicked = first.lines(/Kernel panic|Oops:/).length > 0 && first.lines("Run /init as init process").length === 0;
  if (!panicked) return first;
  say(`boot ${options.name}: the kernel panicked before the initrd ran (a TCG flake, log ${first.logPath}); booting it once more`);
  return boot({ ...options, name: `${options.name}-again` });
}

function report(name: string, result: BootResult): void {
  const switchRoot = result.uptimeAt("NETIMPORT-E2E-MARK switch-root");
  const rootOk = result.uptimeAt("NETIMPORT-E2E-ROOT-OK");
  say(`boot ${name}: ${result.seconds.toFixed(1)} s on the host${result.timedOut ? " (TIMED OUT)" : ""}` +
    (switchRoot !== undefined ? `, switch-root at ${switchRoot.toFixed(2)} s guest uptime` : "") +
    (rootOk !== undefined ? `, root init at ${rootOk.toFixed(2)} s` : "") +
    (result.lines("NETIMPORT-E2E-EMERGENCY").length ? ", EMERGENCY" : "") + ` — log ${result.logPath}`);
}

/** Asserts the root image NAME booted (its init printed its marker). */
export function assertRootBooted(result: BootResult, name: string): void {
  assert.ok(result.lines(`NETIMPORT-E2E-ROOT-OK ${name}`).length > 0,
    `root "${name}" did not boot (log ${result.logPath}):\n${diagnosis(result)}`);
}

/** Asserts a boot failed the intended way: a `netimport: ` (or `netimport attach|verity|lazy: `) reason line matching REASON, then the emergency marker. */
export function assertFailedWithReason(result: BootResult, reason: RegExp): void {
  const reasons = result.lines(/netimport(?: attach| verity| lazy)?: /);
  assert.ok(result.lines("NETIMPORT-E2E-EMERGENCY").length > 0, `no emergency marker (log ${result.logPath}):\n${diagnosis(result)}`);
  assert.ok(reasons.some((line) => reason.test(line)),
    `no "netimport: " line matching ${reason} (log ${result.logPath}); netimport lines:\n${reasons.join("\n")}\n${diagnosis(result)}`);
  assert.equal(result.lines("NETIMPORT-E2E-ROOT-OK").length, 0, "the root booted although it should not");
}

/** The interesting part of a serial log: netimport lines, failed units, the emergency journal, the end. */
export function diagnosis(result: BootResult): string {
  const interesting = result.lines(/netimport|NETIMPORT-E2E|FAILED|Failed|Dependency failed|Timed out/);
  return [...interesting.slice(0, 80), "--- tail ---", result.tail(25)].join("\n");
}
