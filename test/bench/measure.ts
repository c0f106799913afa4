// Runs a command and measures it through GNU time: wall time, CPU seconds (user + system of the command
// and every child it waited for: a `bash -c 'curl | zstd -dc > f'` pipeline counts curl and zstd),
// the largest single process's peak RSS, and optionally the peak of the whole process tree's summed RSS.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type Run = {
  /** Wall time from spawn to exit. */
  seconds: number;
  /** User + system CPU seconds of the command and the children it waited for (GNU time %U + %S). */
  cpuSeconds: number;
  /** "Maximum resident set size" (GNU time %M) in bytes: the largest single process of the tree. */
  maxRss: number;
  /** Peak of the summed RSS of the whole process tree, sampled every 20 ms; only if asked for. */
  treePeakRss?: number;
  code: number | null;
  /** The last few KB of stderr, to explain a failure. */
  stderr: string;
  /** Killed after RunOptions.timeoutSeconds. */
  timedOut?: boolean;
};

export const GNU_TIME = "/usr/bin/time";
/** Elapsed, user, system seconds and maximum RSS in KiB. */
const TIME_FORMAT = "%e %U %S %M";

/**
 * GNU time's `-o` file for TIME_FORMAT. It writes "Command exited with non-zero status N" (or
 * "Command terminated by signal N") on a line before the values when the command failed.
 * @example parseTime("Command exited with non-zero status 1\n1.20 0.50 0.25 1024\n") // { cpuSeconds: 0.75, maxRss: 1048576 }
 */
export function parseTime(text: string): { cpuSeconds: number; maxRss: number } | undefined {
  const last = text.trim().split("\n").at(-1) ?? "";
  const match = /^(\d+(?:\.\d+)?) (\d+(?:\.\d+)?) (\d+(?:\.\d+)?) (\d+)$/.exec(last.trim());
  if (!match) return undefined;
  return { cpuSeconds: Number(match[2]) + Number(match[3]), maxRss: Number(match[4]) * 1024 };
}

const running = new Set<ChildProcess>();

/** Kills a measured command with everything it started (its own process group). */
function killTree(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
  } catch { /* already gone */ }
}

/** Kills the commands measure() is running (on SIGINT, so the tmpfs can be unmounted). */
export async function killRunning(): Promise<void> {
  const exits = [...running].map((child) => new Promise<void>((resolve) => {
    child.once("close", () => resolve());
    killTree(child);
  }));
  await Promise.all(exits);
}

export type RunOptions = {
  env?: NodeJS.ProcessEnv;
  treeRss?: boolean;
  /** Kill the command (and all it started) after this long: a hung tool must not stall the run. */
  timeoutSeconds?: number;
};

/**
 * Runs `command args` under GNU time to completion, timing it from spawn to exit.
 * @example const { seconds, cpuSeconds, treePeakRss } = await measure("dist/netimport", ["pull", url, dest], { treeRss: true });
 */
export async function measure(command: string, args: string[], options: RunOptions = {}): Promise<Run> {
  const timeDir = mkdtempSync(join(tmpdir(), "netimport-bench-time-"));
  const timeFile = join(timeDir, "time");
  const argv = [GNU_TIME, "-f", TIME_FORMAT, "-o", timeFile, command, ...args];
  const started = process.hrtime.bigint();
  // In a process group of its own, so a timeout or ^C kills the whole tree.
  const child = spawn(argv[0]!, argv.slice(1), { env: options.env ?? process.env, stdio: ["ignore", "ignore", "pipe"], detached: true });
  running.add(child);
  child.once("close", () => running.delete(child));
  let timedOut = false;
  const timer = options.timeoutSeconds === undefined ? undefined : setTimeout(() => {
    timedOut = true;
    killTree(child);
  }, options.timeoutSeconds * 1000);
  let treePeakRss = 0;
  const tree = options.treeRss && child.pid !== undefined ? treeSampler(child.pid) : undefined;
  const sampler = tree ? setInterval(() => { treePeakRss = Math.max(treePeakRss, tree()); }, 20) : undefined;
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => { stderr = (stderr + text).slice(-4000); });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (exitCode) => resolve(exitCode));
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  clearTimeout(timer);
  let timed: ReturnType<typeof parseTime>;
  try { timed = parseTime(readFileSync(timeFile, "utf8")); } catch { /* the command did not run */ }
  rmSync(timeDir, { recursive: true, force: true });
  const maxRss = timed?.maxRss ?? NaN;
  return {
    seconds,
    cpuSeconds: timed?.cpuSeconds ?? NaN,
    maxRss,
    // Never below the largest single process: a short peak can fall between two samples.
    treePeakRss: sampler ? Math.max(treePeakRss, Number.isFinite(maxRss) ? maxRss : 0) : undefined,
    code,
    stderr,
    ...(timedOut ? { timedOut } : {}),
  };
}

function readOr(path: string, fallback: string): string {
  try { return readFileSync(path, "utf8"); } catch { return fallback; }
}

/** Every process's parent, from /proc/PID/stat (this kernel has no /proc/PID/task/TID/children). */
function parents(): Map<number, number> {
  const parentOf = new Map<number, number>();
  for (const entry of readdirOr("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readOr(`/proc/${entry}/stat`, "");
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (Number.isInteger(ppid)) parentOf.set(Number(entry), ppid);
  }
  return parentOf;
}

function readdirOr(path: string): string[] {
  try { return readdirSync(path); } catch { return []; }
}

/** Every descendant of `pid`. */
function descendants(pid: number): number[] {
  const parentOf = parents();
  const tree = new Set([pid]);
  // Parents have lower pids than their children unless pids wrapped; loop until no process is added.
  for (let grew = true; grew;) {
    grew = false;
    for (const [child, parent] of parentOf) {
      if (tree.has(parent) && !tree.has(child)) {
        tree.add(child);
        grew = true;
      }
    }
  }
  tree.delete(pid);
  return [...tree];
}

/** What the sampler reads of a process's /proc/PID/status. */
export type ProcessStatus = { pid: number; name: string; ppid: number; rss: number };

/**
 * Parses the Name, PPid and VmRSS (in bytes) lines of /proc/PID/status.
 * @example parseStatus(1, "Name:\tzstd\nPPid:\t7\nVmRSS:\t  2048 kB\n") // { pid: 1, name: "zstd", ppid: 7, rss: 2097152 }
 */
export function parseStatus(pid: number, text: string): ProcessStatus | undefined {
  const name = /^Name:\t(.*)$/m.exec(text)?.[1];
  const ppid = /^PPid:\s+(\d+)$/m.exec(text)?.[1];
  if (name === undefined || ppid === undefined) return undefined;
  const rss = /^VmRSS:\s+(\d+) kB$/m.exec(text)?.[1];
  return { pid, name, ppid: Number(ppid), rss: rss === undefined ? 0 : Number(rss) * 1024 };
}

/**
 * The summed RSS of a process tree. A child that has the same name as its parent is left out: between
 * fork and exec (netimport spawning setfattr, bash a pipeline member) it shows all of its parent's
 * pages as its own RSS though it shares them, and would count them twice; a subshell that stays bash
 * (`{ …; }` in a pipeline) is left out too, a few MiB it mostly shares with its parent.
 * @example treeRss([{ pid: 2, name: "netimport", ppid: 1, rss: 100 }, { pid: 3, name: "netimport", ppid: 2, rss: 100 }]) // 100
 */
export function treeRss(members: readonly ProcessStatus[]): number {
  const byPid = new Map(members.map((member) => [member.pid, member]));
  let total = 0;
  for (const member of members) {
    if (byPid.get(member.ppid)?.name === member.name) continue;
    total += member.rss;
  }
  return total;
}

/**
 * A sampler of the summed VmRSS in bytes of every descendant of `pid` (not `pid` itself: that is GNU
 * time), as treeRss() counts it. Finding the descendants reads every process's stat, a few ms of the
 * CPU the measured tool also needs: that is done on every 5th sample only, in between the known ones'
 * status is read.
 */
export function treeSampler(pid: number): () => number {
  let known: number[] = [];
  let samples = 0;
  return () => {
    if (samples++ % 5 === 0) known = descendants(pid);
    const members: ProcessStatus[] = [];
    for (const member of known) {
      const status = parseStatus(member, readOr(`/proc/${member}/status`, ""));
      if (status) members.push(status);
    }
    return treeRss(members);
  };
}

/** Wall time only, synchronously: for short commands timed many times. */
export function measureSync(command: string, args: string[], env?: NodeJS.ProcessEnv): { seconds: number; code: number | null; stderr: string } {
  const started = process.hrtime.bigint();
  const result = spawnSync(command, args, { env: env ?? process.env, stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { seconds, code: result.status, stderr: (result.stderr ?? "").slice(-4000) };
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * The order the tools of a row run in on run `index`: as listed on even runs, reversed on odd ones,
 * so every two tools swap places from one run to the next (A B, B A, A B, …).
 * @example runOrder(["netimport", "curl"], 1) // ["curl", "netimport"]
 */
export function runOrder<T>(tools: readonly T[], index: number): T[] {
  return index % 2 === 0 ? [...tools] : [...tools].reverse();
}
