// Reading a lazy root's boot (rd.systemd.import=…,lazy,…): the root storage daemon's `netimport lazy: `
// lines on the console (it logs to /dev/kmsg, so they outlive the initrd), the probe's LAZY line (which
// devices the device-mapper devices sit on: nbdN while served over HTTP, loopN once the local copy took
// over), extra initrd files that mark when the lazy service starts and what it holds at switch-root,
// and a signed checksum for a served file.
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileSha256, run } from "./exec.ts";
import type { Images } from "./images.ts";
import { diagnosis } from "./lab.ts";
import { probeValue } from "./probe.ts";
import type { ExtraFiles } from "./initrd.ts";
import type { BootResult } from "./qemu.ts";

/**
 * The console lines of the lazy root's daemon (those matching MATCH, if given).
 * @example lazyLines(result, /answers again/).length
 */
export function lazyLines(result: BootResult, match?: RegExp): string[] {
  return result.lines(/netimport lazy: /).filter((line) => match === undefined || match.test(line));
}

/** The probe's LAZY line, parsed: each device-mapper device's slaves, /dev/nbd0's size, the daemons (pid:RSS). */
export type LazyReport = { slaves: Record<string, string[]>; nbd: string; daemon: string; uptime: number | undefined; line: string };

/**
 * The probe's `NETIMPORT-E2E-LAZY slaves=NAME:SLAVE+SLAVE,… nbd=SIZE|gone daemon=PID:RSS|… uptime=S` line,
 * or undefined when the probe printed none (netimport_e2e.lazy= missing, or the probe never ran).
 * @example lazyReport(result)?.slaves["netimport-root"] // ["dm-0", "dm-1"]
 */
export function lazyReport(result: BootResult): LazyReport | undefined {
  const line = probeValue(result, "LAZY");
  if (!line) return undefined;
  const field = (name: string): string => new RegExp(`(?:^| )${name}=(\\S*)`).exec(line)?.[1] ?? "";
  const slaves: Record<string, string[]> = {};
  for (const entry of field("slaves").split(",").filter(Boolean)) {
    const [name = "", list = ""] = entry.split(":");
    slaves[name] = list.split("+").filter(Boolean);
  }
  const uptime = field("uptime");
  return { slaves, nbd: field("nbd"), daemon: field("daemon"), uptime: uptime ? Number(uptime) : undefined, line };
}

/**
 * Every device some device-mapper device in REPORT sits on (nbd0, loop3, dm-0, …).
 * @example allSlaves(lazyReport(result)!).some((slave) => slave.startsWith("loop"))
 */
export function allSlaves(report: LazyReport): string[] {
  return Object.values(report.slaves).flat();
}

/**
 * The LAZY line exists and shows the image still served over NBD: some device-mapper device sits on an nbd device.
 * @example assertStillServed(result) // after a boot with netimport_e2e.lazy=now
 */
export function assertStillServed(result: BootResult): LazyReport {
  const report = lazyReport(result);
  assert.ok(report, `no NETIMPORT-E2E-LAZY line (log ${result.logPath}):\n${diagnosis(result)}`);
  assert.ok(allSlaves(report).some((slave) => slave.startsWith("nbd")),
    `the root was expected to still read through /dev/nbd* (the copy not yet complete), but: ${report.line}\n${lazyLines(result).join("\n")}`);
  assert.notEqual(report.nbd, "gone", `/dev/nbd0 is gone while the root still reads through it: ${report.line}`);
  return report;
}

/**
 * The LAZY line shows the local copy took over: device-mapper devices on loop devices, none on nbd, /dev/nbd0 released.
 * @example assertHydrated(result) // after a boot with netimport_e2e.lazy=wait
 */
export function assertHydrated(result: BootResult): LazyReport {
  const report = lazyReport(result);
  assert.ok(report, `no NETIMPORT-E2E-LAZY line (log ${result.logPath}):\n${diagnosis(result)}`);
  const slaves = allSlaves(report);
  assert.ok(!slaves.some((slave) => slave.startsWith("nbd")), `a device-mapper device still sits on /dev/nbd*: ${report.line}\n${lazyLines(result).join("\n")}`);
  assert.ok(slaves.some((slave) => slave.startsWith("loop")), `no device-mapper device sits on a loop device (the local copy): ${report.line}`);
  assert.ok(report.nbd === "0" || report.nbd === "gone", `/dev/nbd0 was not released (size ${report.nbd} sectors): ${report.line}`);
  return report;
}

/**
 * No block layer errors on the console: a lazy root must never fail a read (outage or not) nor lose one at shutdown.
 * @example assertNoBlockErrors(result)
 */
export function assertNoBlockErrors(result: BootResult): void {
  // The nbd driver's own lines name errors only when a request failed or hung; its "NBD_DISCONNECT",
  // "Disconnected due to user request" and "shutting down sockets" belong to the planned switch to the copy.
  const nbdTrouble = "block nbd\\d+: (?:Receive control failed|Send control failed|Dead connection|Connection timed out|Possible stuck request|Other side returned error|Unexpected reply)";
  const errors = result.lines(new RegExp(`I/O error|critical medium error|blk_update_request|EXT4-fs error|verity: .*corrupted|${nbdTrouble}`));
  assert.deepEqual(errors, [], `block errors on the console (log ${result.logPath})`);
}

/** The line saying the copy is complete: `netimport lazy: hydrated|copied … in S s (X MB/s)`. */
export const copyComplete = /netimport lazy: (?:hydrated|copied) .* in [\d.]+ s \([\d.]+ MB\/s\)/;

/**
 * The copy-complete line's seconds and MB/s, when there is one.
 * @example hydration(result)?.mbPerSecond
 */
export function hydration(result: BootResult): { seconds: number; mbPerSecond: number; line: string } | undefined {
  const line = lazyLines(result, copyComplete)[0];
  const match = line ? /in ([\d.]+) s \(([\d.]+) MB\/s\)/.exec(line) : null;
  return line && match ? { seconds: Number(match[1]), mbPerSecond: Number(match[2]), line } : undefined;
}

/**
 * The console line numbers of the first line matching each expression (-1 when missing), to check their order.
 * @example const [down, back] = lineOrder(result, /does not answer/, /answers again/)
 */
export function lineOrder(result: BootResult, ...matches: RegExp[]): number[] {
  const lines = result.log.split(/\r?\n/);
  return matches.map((match) => lines.findIndex((line) => match.test(line)));
}

/**
 * Initrd files for a lazy boot: markers when the lazy service starts and has connected the device
 * (`NETIMPORT-E2E-MARK start|end netimport-lazy-…`), and, just before switch-root, a
 * `NETIMPORT-E2E-LAZY-MEMORY pid=PID rss=KB copy=FILE:ALLOCATEDkB/BYTESB uptime=S` line per root storage
 * daemon: what a lazy root costs the initrd when the system takes over (RSS, and the copy so far in /run).
 * @example lab.bootDirect({ …, extra: { ...lazyInitrdFiles(), ...trusted() } })
 */
export function lazyInitrdFiles(): ExtraFiles {
  return {
    "etc/systemd/system/netimport-lazy-.service.d/90-e2e-mark.conf":
      "[Service]\nExecStartPre=-/usr/lib/netimport-e2e/mark.sh start %n\nExecStartPost=-/usr/lib/netimport-e2e/mark.sh end %n\n",
    "etc/systemd/system/initrd-switch-root.service.d/91-e2e-lazy-memory.conf":
      "[Service]\nExecStartPre=-/usr/lib/netimport-e2e/lazy-memory.sh\n",
    "usr/lib/netimport-e2e/lazy-memory.sh": lazyMemoryScript,
  };
}

// Only shell builtins, ls, sed and tr: the initrd has no du, stat or head.
const lazyMemoryScript = `#!/bin/bash
# Before switch-root: each root storage daemon's resident memory and the files in /run it holds open
# (the local copy), allocated and apparent size.
exec >/dev/ttyS0 2>&1
read -r up _ </proc/uptime
for proc in /proc/[0-9]*; do
    IFS= read -r -d '' arg0 2>/dev/null <"$proc/cmdline" || continue
    case "$arg0" in @netimport*) ;; *) continue ;; esac
    rss=$(sed -n 's/^VmRSS:[[:space:]]*//p' "$proc/status" | tr -d ' ')
    copies=""
    for fd in "$proc"/fd/*; do
        target=$(readlink "$fd") || continue
        case "$target" in /run/*) ;; *) continue ;; esac
        [ -f "$target" ] || continue
        # ls -lsk: allocated KiB first, the length in bytes sixth.
        set -- $(ls -lskL "$target")
        copies="$copies,$target:$1kB/$6B"
    done
    echo "NETIMPORT-E2E-LAZY-MEMORY pid=\${proc#/proc/} rss=$rss copy=\${copies#,} uptime=$up"
done
`;

/**
 * The LAZY-MEMORY line's fields (first daemon): RSS in kB, the copy's allocated kB and length, at what uptime.
 * @example lazyMemory(result)?.rssKb
 */
export function lazyMemory(result: BootResult): { rssKb: number; copyKb: number; copyBytes: number; uptime: number } | undefined {
  const line = result.lines("NETIMPORT-E2E-LAZY-MEMORY ")[0];
  if (!line) return undefined;
  const rss = /rss=(\d+)kB/.exec(line)?.[1];
  const copy = /copy=[^:\s]+:(\d+)kB\/(\d+)B/.exec(line);
  const uptime = /uptime=([\d.]+)/.exec(line)?.[1];
  return { rssKb: Number(rss ?? NaN), copyKb: Number(copy?.[1] ?? NaN), copyBytes: Number(copy?.[2] ?? NaN), uptime: Number(uptime ?? NaN) };
}

/**
 * Publishes a signed checksum for the served file PATH, as images.ts does for its own: PATH.sha256 and
 * PATH.sha256.asc, signed with the lab's key (the initrd trusts its keyring). A lazy root's default
 * verify=signature then finds what it checks the copy against, so what else it refuses is the point.
 * @example signChecksum(lab.images, "real/root.raw")
 */
export function signChecksum(images: Images, path: string): void {
  const file = join(images.dir, path);
  writeFileSync(`${file}.sha256`, `${fileSha256(file)}  ${basename(file)}\n`);
  run("gpg", ["--batch", "--yes", "--armor", "--detach-sign", "--output", `${file}.sha256.asc`, `${file}.sha256`],
    { env: { ...process.env, GNUPGHOME: dirname(images.keyring) } });
}

/**
 * Calls `action` once, as soon as one of the serial logs at `logPaths` (a boot, and its retry after a
 * kernel panic) shows `text`: for what must happen at a moment of the guest's boot, such as taking the
 * server away once the system has switched root. Removes stale logs first. Returns the stop function.
 * @example const stop = whenConsoleSays([log], "NETIMPORT-E2E-MARK switch-root", () => server.armOutage(…))
 */
export function whenConsoleSays(logPaths: string[], text: string, action: () => void): () => void {
  for (const path of logPaths) rmSync(path, { force: true });
  const timer = setInterval(() => {
    for (const path of logPaths) {
      let log = "";
      try {
        log = readFileSync(path, "latin1");
      } catch {
        continue;
      }
      if (log.includes(text)) {
        clearInterval(timer);
        action();
        return;
      }
    }
  }, 200);
  return () => clearInterval(timer);
}
