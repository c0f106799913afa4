// The built single executable (npm run build), which the CLI and systemd-analyze tests run for real.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const EXECUTABLE = fileURLToPath(new URL("../../../dist/netimport", import.meta.url));

export function requireExecutable(): string {
  if (!existsSync(EXECUTABLE)) throw new Error(`${EXECUTABLE} is missing: run npm run build first (npm test does)`);
  return EXECUTABLE;
}
