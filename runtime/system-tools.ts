// The programs netimport runs (zstd, xz, lbzip2, bzip2, gzip, GNU tar, setfattr, losetup, dmsetup, …): found on
// PATH the first time they are asked for and remembered: a pull searches PATH once per program, not
// once per stage that thinks of it. Keyed by PATH too, so a changed PATH is searched afresh. runTool() runs one and turns its failure into an Error with its first line of stderr.
import { execFile } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** systemd's default PATH, for a process started without one. */
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const found = new Map<string, string | undefined>();

/**
 * The absolute path of the executable `name` on PATH (systemd's default PATH when unset), or undefined.
 *
 * @example findExecutable("zstd") // "/usr/bin/zstd"
 */
export function findExecutable(name: string, path = process.env.PATH || DEFAULT_PATH): string | undefined {
  const key = `${path}\0${name}`;
  if (found.has(key)) return found.get(key);
  let hit: string | undefined;
  for (const dir of path.split(":").filter(Boolean)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      hit = candidate;
      break;
    } catch {
      // not here
    }
  }
  found.set(key, hit);
  return hit;
}

/** Runs a tool, turning a failure into an Error carrying its stderr's first line. */
export async function runTool(command: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(command, args, { encoding: "utf8" });
    return stdout;
  } catch (error) {
    const e = error as { code?: string | number; stderr?: string; message: string };
    if (e.code === "ENOENT") throw new Error(`${command} is not installed`);
    const detail = (e.stderr ?? "").trim().split("\n")[0] || e.message;
    throw new Error(`${command} ${args.join(" ")} failed: ${detail}`);
  }
}
