// Runs a command and measures it: wall time, exit status and (through GNU time) peak resident set size.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type Run = {
  seconds: number;
  /** Peak RSS ("Maximum resident set size", GNU time) of the largest single process, in bytes; only if asked for. */
  peakRss?: number;
  /** Peak of the summed RSS of the whole process tree (the command and what it spawns), sampled every 20 ms. */
  treePeakRss?: number;
  code: number | null;
  /** The last few KB of stderr, to explain a failure. */
  stderr: string;
};

const running = new Set<ChildProcess>();

/** Kills the commands measure() is running (on SIGINT, so the tmpfs can be unmounted). */
export async function killRunning(): Promise<void> {
  const exits = [...running].map((child) => new Promise<void>((resolve) => {
    child.once("close", () => resolve());
    child.kill("SIGKILL");
  }));
  await Promise.all(exits);
}

export type RunOptions = { env?: NodeJS.ProcessEnv; peakRss?: boolean };

/**
 * Runs `command args` to completion, timing it from spawn to exit.
 * @example const { seconds, peakRss } = await measure("dist/netimport", ["pull", url, dest], { peakRss: true });
 */
export async function measure(command: string, args: string[], options: RunOptions = {}): Promise<Run> {
  let argv = [command, ...args];
  let rssDir: string | undefined;
  if (options.peakRss) {
    rssDir = mkdtempSync(join(tmpdir(), "netimport-bench-rss-"));
    argv = ["/usr/bin/time", "-f", "%M", "-o", join(rssDir, "rss"), ...argv];
  }
  const started = process.hrtime.bigint();
  const child = spawn(argv[0]!, argv.slice(1), { env: options.env ?? process.env, stdio: ["ignore", "ignore", "pipe"] });
  running.add(child);
  child.once("close", () => running.delete(child));
  let treePeakRss = 0;
  const tree = options.peakRss && child.pid !== undefined ? treeSampler(child.pid) : undefined;
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
  let peakRss: number | undefined;
  if (rssDir) {
    try {
      // GNU time prints "Command exited with non-zero status N" before the value when the command fails.
      const lines = readFileSync(join(rssDir, "rss"), "utf8").trim().split("\n");
      peakRss = Number(lines.at(-1)) * 1024;
    } catch { /* the command did not run */ }
    rmSync(rssDir, { recursive: true, force: true });
  }
  return { seconds, peakRss, treePeakRss: sampler ? Math.max(treePeakRss, peakRss ?? 0) : undefined, code, stderr };
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

/**
 * A sampler of the summed VmRSS in bytes of every descendant of `pid` (not `pid` itself: that is GNU
 * time). Finding the descendants reads every process's stat, a few ms of the CPU the measured tool
 * also needs: that is done on every 5th sample only, in between the known ones' status is read.
 */
export function treeSampler(pid: number): () => number {
  let known: number[] = [];
  let samples = 0;
  return () => {
    if (samples++ % 5 === 0) known = descendants(pid);
    let total = 0;
    for (const member of known) {
      const match = /^VmRSS:\s+(\d+) kB/m.exec(readOr(`/proc/${member}/status`, ""));
      total += match ? Number(match[1]) * 1024 : 0;
    }
    return total;
  };
}

/** Like measure(), synchronously and without RSS: for short commands timed many times. */
export function measureSync(command: string, args: string[], env?: NodeJS.ProcessEnv): Run {
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
