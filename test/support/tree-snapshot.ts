// A snapshot of a folder tree, symlinks not followed: to prove that unpacking changed nothing outside its
// target folder (compare the snapshots of the parent before and after, the target left out).
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

/** Path (relative to the root) → what it is: type, mode, owner, size, inode, link count, content or link target. */
export function snapshot(root: string, exclude: string[] = []): Map<string, string> {
  const seen = new Map<string, string>();
  const walk = (path: string, relative: string) => {
    const stat = lstatSync(path);
    let what = `mode=${stat.mode.toString(8)} uid=${stat.uid} gid=${stat.gid} size=${stat.size} ino=${stat.ino} nlink=${stat.nlink} mtime=${stat.mtimeMs}`;
    if (stat.isSymbolicLink()) what += ` -> ${readlinkSync(path)}`;
    else if (stat.isFile()) what += ` sha256=${createHash("sha256").update(readFileSync(path)).digest("hex")}`;
    seen.set(relative || ".", what);
    if (stat.isDirectory()) {
      for (const name of readdirSync(path).sort()) {
        const child = join(path, name);
        if (!exclude.includes(child)) walk(child, relative ? `${relative}/${name}` : name);
      }
    }
  };
  walk(root, "");
  return seen;
}

/** Inode numbers of the regular files under `root` (to find hard links to them from elsewhere). */
export function fileInodes(root: string, exclude: string[] = []): Map<number, string> {
  const inodes = new Map<number, string>();
  for (const [path, what] of snapshot(root, exclude)) {
    const match = /^mode=10\d+ .* ino=(\d+) /.exec(what);
    if (match) inodes.set(Number(match[1]), path);
  }
  return inodes;
}
