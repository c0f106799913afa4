// netimport-generator NORMAL_DIR [EARLY_DIR LATE_DIR]: parse, decide, write.
import { isSea } from "node:sea";
import { openGeneratorLog } from "./generator-log.ts";
import { readGeneratorInputs } from "./generator-inputs.ts";
import type { LogLine } from "./log-line.ts";
import { makePlan } from "./plan.ts";
import { renderUnits } from "./render-units.ts";
import { writeUnits } from "./write-units.ts";

/** Where the executable is installed in the initrd (dist/tree); the running binary when it is one. */
const INSTALLED_EXECUTABLE = "/usr/lib/netimport/netimport";

export async function runGenerator(argv: string[]): Promise<number> {
  const sink = openGeneratorLog();
  if (argv.length !== 1 && argv.length !== 3) {
    sink({ level: "err", message: `This program takes one or three arguments (NORMAL_DIR [EARLY_DIR LATE_DIR]), got ${argv.length}.` });
    return 1;
  }
  const [normal, early = normal, late = normal] = argv as [string, string?, string?];
  const log: LogLine[] = [];
  const inputs = readGeneratorInputs(process.env, log);
  const plan = makePlan(inputs);
  for (const line of plan.log) log.push(line);
  const units = renderUnits(plan.requests, {
    executable: isSea() ? process.execPath : INSTALLED_EXECUTABLE,
    inInitrd: inputs.inInitrd,
    settings: plan.settings,
    actions: plan.actions,
  });
  for (const line of log) sink(line);
  // Everything that can be written is; the exit status reports what could not.
  const failures = writeUnits(units, { normal, early, late });
  for (const line of failures) sink(line);
  return failures.length > 0 ? 1 : 0;
}
