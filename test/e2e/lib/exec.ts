// Runs the build tools the harness needs, quietly, and reports what each step cost.
import { spawnSync, type SpawnSyncOptions } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** Prints one harness line (stderr, so node:test's reporter output stays readable). */
export function say(line: string): void {
  process.stderr.write(`e2e: ${line}\n`);
}

/**
 * Runs a command and returns its stdout; throws with the tail of its output when it fails.
 * @example run("mkfs.ext4", ["-q", "-F", "img", "16M"])
 */
export function run(command: string, args: readonly string[], options: SpawnSyncOptions = {}): string {
  const result = spawnSync(command, args, { encoding: "utf8", maxBuffer: 256 * 1024 * 1024, ...options });
  if (result.error) throw new Error(`${command}: ${result.error.message}`);
  if (result.status !== 0) {
    const output = `${result.stdout ?? ""}${result.stderr ?? ""}`.split("\n").slice(-40).join("\n");
    throw new Error(`${command} ${args.join(" ")} failed (${result.status ?? result.signal}):\n${output}`);
  }
  return String(result.stdout ?? "");
}

/** Runs a shell script with bash -euo pipefail. */
export function sh(script: string, options: SpawnSyncOptions = {}): string {
  return run("bash", ["-euo", "pipefail", "-c", script], options);
}

/** Times a synchronous or asynchronous step and prints its duration. */
export async function timed<T>(what: string, work: () => T | Promise<T>): Promise<T> {
  const start = performance.now();
  const value = await work();
  say(`${what} (${((performance.now() - start) / 1000).toFixed(1)} s)`);
  return value;
}

/** A short, stable key for cache names: sha256 over the given strings and file contents. */
export function cacheKey(...parts: readonly (string | Buffer)[]): string {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part).update("\0");
  return hash.digest("hex").slice(0, 12);
}

/** Every file below a folder (sorted, relative paths with their contents), for cache keys. */
export function folderFingerprint(dir: string): string {
  const hash = createHash("sha256");
  const walk = (sub: string): void => {
    for (const name of readdirSync(join(dir, sub)).sort()) {
      const rel = join(sub, name);
      const stat = statSync(join(dir, rel));
      hash.update(rel).update("\0");
      if (stat.isDirectory()) walk(rel);
      else hash.update(readFileSync(join(dir, rel)));
    }
  };
  walk("");
  return hash.digest("hex").slice(0, 12);
}

/** sha256 of a file, hex. */
export function fileSha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}
