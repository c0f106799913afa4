// A private tmpfs for the tools' output, so disk speed does not enter the pull numbers.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type Tmpfs = { path: string; clear: () => void; unmount: () => void };

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
    unmount: () => {
      if (!mounted) return;
      // Lazily if busy (a killed tool's grandchild may still hold a file open): it goes when they exit.
      try { execFileSync("umount", [path], { stdio: "ignore" }); } catch { execFileSync("umount", ["--lazy", path]); }
      mounted = false;
      rmSync(path, { recursive: true, force: true });
    },
  };
}
