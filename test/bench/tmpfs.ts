// A private tmpfs for the tools' output, so disk speed does not enter the pull numbers.
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type Tmpfs = { path: string; clear: () => void; prefault: (bytes: number) => void; unmount: () => void };

/**
 * Mounts a tmpfs of `size` (mount's syntax, e.g. "3g") on a new temporary folder (needs root).
 * @example const scratch = mountTmpfs("3g"); …; scratch.unmount();
 */
export function mountTmpfs(size: string): Tmpfs {
  const path = mkdtempSync(join(tmpdir(), "netimport-bench-out-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "netimport-bench", path]);
  let mounted = true;
  return {
    path,
    clear: () => {
      for (const entry of readdirSync(path)) rmSync(join(path, entry), { recursive: true, force: true });
    },
    // On this VM a page the guest touches for the first time (or again after the host reclaimed it)
    // costs a fault in the host: a tool that writes 1 GiB right after another one freed its memory
    // ran at 430-800 MB/s instead of ~1200 (curl -o). Writing and deleting `bytes` first hands every
    // tool the same warm pages.
    prefault: (bytes) => {
      const warm = join(path, ".prefault");
      const block = Buffer.alloc(4 << 20, 0xa5);
      const fd = openSync(warm, "w");
      try {
        for (let at = 0; at < bytes; at += block.length) writeSync(fd, block, 0, Math.min(block.length, bytes - at));
      } finally {
        closeSync(fd);
        rmSync(warm);
      }
    },
    unmount: () => {
      if (!mounted) return;
      // Lazily if busy (a killed tool's grandchild may still hold a file open): it goes when they exit.
      try { execFileSync("umount", [path], { stdio: "ignore" }); } catch { execFileSync("umount", ["--lazy", path]); }
      mounted = false;
      rmSync(path, { recursive: true, force: true });
    },
  };
}
