// The programs a pull may run (zstd, xz, lbzip2, bzip2, gzip, GNU tar, setfattr, getfattr), found on
// PATH the first time they are asked for and remembered: a pull searches PATH once per program, not
// once per stage that thinks of it. Keyed by PATH too, so a changed PATH is searched afresh.
import { accessSync, constants } from "node:fs";
import { join } from "node:path";

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
