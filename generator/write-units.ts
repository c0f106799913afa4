// The generator's I/O edge on the way out: unit files and their links in the generator folders.
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { GeneratorDir, RenderedUnits } from "./render-units.ts";

export type GeneratorDirs = Record<GeneratorDir, string>;

/** Writes every file whole and makes every link; throws on the first failure. */
export function writeUnits(units: RenderedUnits, dirs: GeneratorDirs): void {
  for (const file of units.files) {
    const path = join(dirs[file.dir], file.name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, file.text.endsWith("\n") ? file.text : `${file.text}\n`, { flag: "wx" });
  }
  for (const link of units.links) addLink(dirs[link.dir], link.target, link.kind, link.unit);
}

/** systemd's generator_add_symlink(): `<dir>/<target>.<kind>/<unit>` → `../<unit>`. */
export function addLink(dir: string, target: string, kind: "wants" | "requires", unit: string): void {
  const linkDir = join(dir, `${target}.${kind}`);
  mkdirSync(linkDir, { recursive: true });
  try {
    symlinkSync(`../${unit}`, join(linkDir, unit));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
}
