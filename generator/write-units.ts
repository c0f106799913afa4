// The generator's I/O edge on the way out: unit files and their links in the generator folders.
// One file that cannot be written must not cost the others: every failure is reported and the rest
// is still written, the early folder (the root file system's units) first.
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { LogLine } from "./log-line.ts";
import type { GeneratorDir, RenderedUnits } from "./render-units.ts";

export type GeneratorDirs = Record<GeneratorDir, string>;

/** sysroot.mount and its drop-in live in the early folder: without them the boot cannot go on. */
const WRITE_ORDER: readonly GeneratorDir[] = ["early", "normal", "late"];

/**
 * Writes every file whole and makes every link, folder by folder; a link to a unit whose file could
 * not be written is left out (it would dangle). Returns one `err` line per failure, empty when all
 * went well.
 */
export function writeUnits(units: RenderedUnits, dirs: GeneratorDirs): LogLine[] {
  const failures: LogLine[] = [];
  const made = new Set<string>();
  const ensureDir = (path: string): void => {
    if (made.has(path)) return;
    mkdirSync(path, { recursive: true });
    made.add(path);
  };
  for (const dir of WRITE_ORDER) {
    const failed = new Set<string>();
    for (const file of units.files) {
      if (file.dir !== dir) continue;
      const path = join(dirs[dir], file.name);
      try {
        ensureDir(dirname(path));
        if (file.symlink !== undefined) symlinkSync(file.symlink, path);
        else writeFileSync(path, file.text.endsWith("\n") ? file.text : `${file.text}\n`, { flag: "wx" });
      } catch (error) {
        failed.add(file.name);
        failures.push({ level: "err", message: `Failed to write ${path}: ${(error as Error).message}` });
      }
    }
    for (const link of units.links) {
      if (link.dir !== dir) continue;
      const where = `${link.target}.${link.kind}/${link.unit} in ${dirs[dir]}`;
      if (failed.has(link.unit)) {
        failures.push({ level: "err", message: `Not linking ${where}: the unit file could not be written.` });
        continue;
      }
      try {
        addLink(dirs[dir], link.target, link.kind, link.unit, ensureDir);
      } catch (error) {
        failures.push({ level: "err", message: `Failed to link ${where}: ${(error as Error).message}` });
      }
    }
  }
  return failures;
}

/** systemd's generator_add_symlink(): `<dir>/<target>.<kind>/<unit>` → `../<unit>`. */
function addLink(
  dir: string,
  target: string,
  kind: "wants" | "requires",
  unit: string,
  ensureDir: (path: string) => void = (path) => mkdirSync(path, { recursive: true }),
): void {
  const linkDir = join(dir, `${target}.${kind}`);
  ensureDir(linkDir);
  try {
    symlinkSync(`../${unit}`, join(linkDir, unit));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
}
