// Runs a command and measures it: wall time, exit status and (through GNU time) peak resident set size.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type Run = {
  seconds: number;
  /** Peak RSS ("Maximum resident set size") in bytes; undefined unless asked for. */
  peakRss?: number;
  code: number | null;
  /** The last few KB of stderr, to explain a failure. */
  stderr: string;
};

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
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => { stderr = (stderr + text).slice(-4000); });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (exitCode) => resolve(exitCode));
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  let peakRss: number | undefined;
  if (rssDir) {
    try {
      // GNU time prints "Command exited with non-zero status N" before the value when the command fails.
      const lines = readFileSync(join(rssDir, "rss"), "utf8").trim().split("\n");
      peakRss = Number(lines.at(-1)) * 1024;
    } catch { /* the command did not run */ }
    rmSync(rssDir, { recursive: true, force: true });
  }
  return { seconds, peakRss, code, stderr };
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
