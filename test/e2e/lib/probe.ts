// Reading the report of the probe that the boot tests' real roots carry (lib/real-root.ts writeProbe):
// `NETIMPORT-E2E-<KEY> <value>` lines on the serial console, then the kernel's power-down.
import assert from "node:assert/strict";
import { say } from "./exec.ts";
import { diagnosis } from "./lab.ts";
import type { BootResult } from "./qemu.ts";

/** The value after `NETIMPORT-E2E-<key> ` in the probe's report. */
export function probeValue(result: BootResult, key: string): string {
  return result.lines(`NETIMPORT-E2E-${key} `)[0]?.replace(/^.*NETIMPORT-E2E-\S+ /, "").trim() ?? "";
}

/** The kernel's timestamp of a console line, in seconds. */
function kernelTime(result: BootResult, text: string): number | undefined {
  const line = result.lines(text).at(-1);
  const value = line ? /^\[\s*([\d.]+)\]/.exec(line)?.[1] : undefined;
  return value === undefined ? undefined : Number(value);
}

/** What the root and /usr must be mounted from: `SOURCE FSTYPE OPTIONS` as findmnt prints them. */
export type Mounts = { root: RegExp; usr?: RegExp };

/** What else to check: SOURCE_URL false for a lazy root, which leaves no pulled file (and no xattr) in /run/machines. */
export type RunningChecks = { sourceUrl?: boolean };

/**
 * The downloaded system reached multi-user.target with `systemctl is-system-running` = running, / and
 * /usr are mounted from what they should be, the pull left user.source_url on the image (unless
 * CHECKS.sourceUrl is false), and `systemctl poweroff` ended in the kernel's power-down. Prints the times.
 * @example assertRunningSystem(result, url, { root: /^\/dev\/mapper\/netimport-root ext4 ro,/ }, { sourceUrl: false })
 */
export function assertRunningSystem(result: BootResult, url: string, mounts: Mounts, checks: RunningChecks = {}): void {
  const state = probeValue(result, "SYSTEM");
  assert.match(state, /^state=running /, `is-system-running: '${state}'; failed units: ${result.lines("NETIMPORT-E2E-FAILED-UNIT").join(", ")}\n${diagnosis(result)}`);
  const root = probeValue(result, "ROOT");
  assert.match(root, mounts.root, `/ is mounted from ${root}`);
  if (mounts.usr) assert.match(probeValue(result, "USR"), mounts.usr, `/usr is mounted from ${probeValue(result, "USR")}`);
  if (checks.sourceUrl !== false) assert.equal(probeValue(result, "SOURCE-URL"), url, "the pull did not leave user.source_url on the image");
  const poweroff = result.uptimeAt("NETIMPORT-E2E-POWEROFF");
  const down = kernelTime(result, "reboot: Power down");
  assert.ok(!result.timedOut && down !== undefined, `no power-down after systemctl poweroff\n${result.tail(30)}`);
  const switchRoot = result.uptimeAt("NETIMPORT-E2E-MARK switch-root");
  const running = result.uptimeAt("NETIMPORT-E2E-SYSTEM");
  say(`${result.logPath.split("/").at(-1)}: kernel → switch-root ${switchRoot?.toFixed(1)} s, → multi-user (running) ${running?.toFixed(1)} s, ` +
    `poweroff → power-down ${poweroff === undefined ? "?" : (down - poweroff).toFixed(1)} s`);
}
