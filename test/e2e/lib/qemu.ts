// Boots a guest under QEMU (TCG: this machine's KVM cannot run a stock kernel) with its serial console
// in a log file; the scenarios judge a boot by the marker lines in that log.
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export type BootResult = {
  /** The whole serial log. */
  log: string;
  logPath: string;
  seconds: number;
  timedOut: boolean;
  /** Lines containing TEXT (or matching a regular expression). */
  lines: (match: string | RegExp) => string[];
  /** The value of `uptime=` on the first line containing TEXT, in seconds. */
  uptimeAt: (text: string) => number | undefined;
  /** The last N lines of the log, for failure messages. */
  tail: (n?: number) => string;
};

export type DirectBoot = { kind: "direct"; kernel: string; initrd: string; cmdline: string };
/** UEFI HTTP boot: OVMF fetches BOOT_URL (a UKI) over QEMU's user network. */
export type UefiHttpBoot = { kind: "uefi-http"; bootUrl: string };

export type BootOptions = (DirectBoot | UefiHttpBoot) & {
  memoryMiB?: number; timeoutSeconds?: number; work: string; name: string;
  /** Called with each new serial console line while the guest runs. */
  onLine?: (line: string) => void;
};

const ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd";

function qemuArgs(options: BootOptions, logPath: string): string[] {
  const common = [
    "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", String(options.memoryMiB ?? 2048),
    "-nodefaults", "-display", "none", "-no-reboot", "-serial", `file:${logPath}`,
  ];
  if (options.kind === "direct") {
    return [...common, "-kernel", options.kernel, "-initrd", options.initrd, "-append", options.cmdline,
      "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"];
  }
  const vars = join(options.work, `${options.name}.OVMF_VARS.fd`);
  copyFileSync(ovmfVars, vars);
  return [...common, "-machine", "q35",
    "-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${ovmfCode}`,
    "-drive", `if=pflash,format=raw,unit=1,file=${vars}`,
    "-netdev", `user,id=n0,bootfile=${options.bootUrl}`,
    // romfile= disables iPXE so the firmware's own HTTP boot runs; no PXE tries (they cost ~75 s).
    "-device", "virtio-net-pci,netdev=n0,romfile=,bootindex=1",
    "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
    "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n",
    "-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=n"];
}

/**
 * Boots one guest and resolves when it powers off (or is killed at the timeout).
 * @example const r = await boot({ kind: "direct", kernel, initrd, cmdline, work, name: "raw-zst" });
 */
export async function boot(options: BootOptions): Promise<BootResult> {
  mkdirSync(options.work, { recursive: true });
  const logPath = join(options.work, `${options.name}.serial.log`);
  const start = performance.now();
  const child = spawn("qemu-system-x86_64", qemuArgs(options, logPath), { stdio: ["ignore", "ignore", "pipe"] });
  // A test runner that is interrupted must not leave a guest behind.
  const killGuest = (): void => { child.kill("SIGKILL"); };
  const onSignal = (signal: NodeJS.Signals): void => { killGuest(); process.exit(signal === "SIGINT" ? 130 : 143); };
  process.once("exit", killGuest);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => { stderr += chunk.toString(); });
  const stopFollowing = options.onLine ? follow(logPath, options.onLine) : () => undefined;
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; child.kill("SIGKILL"); }, (options.timeoutSeconds ?? 180) * 1000);
  await new Promise<void>((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", () => resolve());
  });
  clearTimeout(timer);
  process.removeListener("exit", killGuest);
  process.removeListener("SIGINT", onSignal);
  process.removeListener("SIGTERM", onSignal);
  stopFollowing();
  const seconds = (performance.now() - start) / 1000;
  let log = "";
  try { log = readFileSync(logPath, "utf8"); } catch { /* qemu failed before writing */ }
  if (stderr.trim()) log += `\n[qemu stderr] ${stderr.trim()}\n`;
  const allLines = log.split(/\r?\n/);
  const lines = (match: string | RegExp): string[] =>
    allLines.filter((line) => (typeof match === "string" ? line.includes(match) : match.test(line)));
  return {
    log, logPath, seconds, timedOut, lines,
    uptimeAt: (text) => {
      const line = lines(text)[0];
      const value = line ? /uptime=([\d.]+)/.exec(line)?.[1] : undefined;
      return value === undefined ? undefined : Number(value);
    },
    tail: (n = 60) => allLines.slice(-n).join("\n"),
  };
}

/** Calls ON_LINE for each complete line appended to PATH; returns a function that stops (flushing the rest). */
function follow(path: string, onLine: (line: string) => void): () => void {
  let offset = 0;
  let partial = "";
  const poll = (final: boolean): void => {
    let data: Buffer;
    try { data = readFileSync(path); } catch { return; }
    partial += data.subarray(offset).toString("latin1");
    offset = data.length;
    const parts = partial.split(/\r?\n/);
    partial = final ? "" : parts.pop() ?? "";
    // Split as bytes (latin1), then read each whole line as the UTF-8 it is.
    for (const line of parts) onLine(Buffer.from(line, "latin1").toString("utf8"));
  };
  const timer = setInterval(() => poll(false), 300);
  return () => { clearInterval(timer); poll(true); };
}
