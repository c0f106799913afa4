// Moves device-mapper devices from one underlying block device to another with the same content and
// geometry, live: the lazy root's linear devices go from /dev/nbdN (the network) to the loop device over
// the complete local copy, under a mounted root, without a remount. For each device whose table names the
// old device: load the same table with the device number replaced (inactive slot), suspend (in-flight I/O
// completes, new I/O waits), resume (the new table is swapped in). dmsetup is given as a function so the
// daemon can run the tool kit's copy after switch-root.
//
// A table is reloaded from what `dmsetup table` prints, which the kernel formats to be loadable again;
// dmsetup hides crypt keys there, so a dm-crypt table could not be reloaded this way (its load fails, and
// is undone). Old dmsetup versions split a --table argument into at most two lines correctly; a longer
// table would fail to load the same safe way. The lazy root's tables are one line each.
import { formatDeviceNumber, type DeviceNumber } from "./device-number.ts";

/** Runs dmsetup with these arguments; its stdout, or an Error saying why it failed. */
export type Dmsetup = (args: string[]) => Promise<string>;

/** One device-mapper device's table, as `dmsetup table` printed it (lines without the "NAME: " prefix). */
interface DeviceTable {
  name: string;
  lines: string[];
}

/** Every device's table in `dmsetup table` output ("NAME: START LENGTH TARGET ARGS…", a line per target). */
function parseTables(text: string): DeviceTable[] {
  const devices = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    if (!line.trim() || line.trim() === "No devices found") continue;
    // Names hold no whitespace (dmsetup mangles it) but may hold ':', so the name ends at the first ": START LENGTH ".
    const match = /^(.+?): (\d+ \d+ \S.*)$/.exec(line);
    if (!match) throw new Error(`unexpected line in dmsetup table output: ${JSON.stringify(line)}`);
    const [, name, table] = match as unknown as [string, string, string];
    devices.set(name, [...(devices.get(name) ?? []), table]);
  }
  return [...devices].map(([name, lines]) => ({ name, lines }));
}

const references = (line: string, device: string) => line.split(/\s+/).includes(device);
/** The line with every whitespace-separated token equal to `from` replaced, and nothing else touched. */
const replaceDevice = (line: string, from: string, to: string) => line.split(/(\s+)/).map((part) => (part === from ? to : part)).join("");

/** A device that was not switched, and in what state it was left. */
export interface RetargetFailure {
  name: string;
  /** The step that failed. */
  step: "info" | "load" | "suspend" | "resume";
  message: string;
  /** True when even a second resume failed: the device may be left suspended, and I/O on it hangs. */
  suspended: boolean;
}

/** Some devices could not be switched (the others were): the old device must stay in service. */
export class RetargetError extends Error {
  readonly switched: string[];
  readonly failures: RetargetFailure[];
  constructor(from: DeviceNumber, to: DeviceNumber, switched: string[], failures: RetargetFailure[]) {
    const done = switched.length ? `switched ${switched.join(", ")} from ${formatDeviceNumber(from)} to ${formatDeviceNumber(to)}, but ` : "";
    const failed = failures.map((f) => {
      const state = f.suspended ? `LEFT SUSPENDED: I/O on it hangs until \`dmsetup resume ${f.name}\`` : `left on ${formatDeviceNumber(from)}`;
      return `${f.name} (${f.step}: ${f.message}; ${state})`;
    });
    super(`${done}could not switch ${failed.join(", ")}`);
    this.name = "RetargetError";
    this.switched = switched;
    this.failures = failures;
  }
}

/**
 * Switches every device-mapper device whose table names `from` (any target type) to `to`, one device at a
 * time: load the table with that device number replaced, suspend, resume. Resolves to the names of the
 * devices switched (none when no table names `from`). When a device cannot be switched it is put back on
 * its old table, never left suspended if a resume can help, and the others are still switched; then it
 * rejects with a RetargetError that names both.
 *
 * ```ts
 * const names = await retargetDevices({ major: 43, minor: 0 }, { major: 7, minor: 3 }, (args) => kit.run("dmsetup", args));
 * console.log(`switched ${names.join(", ")} from 43:0 to 7:3`);
 * ```
 */
export async function retargetDevices(from: DeviceNumber, to: DeviceNumber, dmsetup: Dmsetup): Promise<string[]> {
  const fromText = formatDeviceNumber(from);
  const toText = formatDeviceNumber(to);
  if (fromText === toText) throw new Error(`cannot retarget ${fromText} to itself`);
  const devices = parseTables(await dmsetup(["table"])).filter((device) => device.lines.some((line) => references(line, fromText)));
  const switched: string[] = [];
  const failures: RetargetFailure[] = [];
  for (const device of devices) {
    const table = device.lines.map((line) => replaceDevice(line, fromText, toText)).join("\n");
    const failure = await switchDevice(device.name, table, { fromText, toText }, dmsetup);
    if (failure) failures.push(failure);
    else switched.push(device.name);
  }
  if (failures.length > 0) throw new RetargetError(from, to, switched, failures);
  return switched;
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Whether `dmsetup info NAME` says the device is read-only ("State: ACTIVE (READ-ONLY)"). */
function readOnlyIn(info: string, name: string): boolean {
  const state = /^State:\s*(.*)$/m.exec(info);
  if (!state) throw new Error(`dmsetup info ${name} printed no State line`);
  return state[1]!.includes("READ-ONLY");
}

/** Loads, suspends and resumes one device; undefined when it now runs on `table`, else what went wrong. */
async function switchDevice(name: string, table: string, devices: { fromText: string; toText: string }, dmsetup: Dmsetup): Promise<RetargetFailure | undefined> {
  // Resume makes a uevent, and dmsetup would wait for udev's rules to acknowledge it: an initrd without
  // them, or a kit without udev after switch-root, would wait forever (see verity-device.ts).
  const resume = () => dmsetup(["resume", name, "--noudevsync"]);
  let readOnly: boolean;
  try {
    readOnly = readOnlyIn(await dmsetup(["info", name]), name);
  } catch (error) {
    return { name, step: "info", message: messageOf(error), suspended: false };
  }
  try {
    // A read-write load would reopen the new device for writing and make a read-only device writable.
    await dmsetup(["load", name, ...(readOnly ? ["--readonly"] : []), "--table", table]);
  } catch (error) {
    await dmsetup(["clear", name]).catch(() => undefined); // the live table was never touched
    return { name, step: "load", message: messageOf(error), suspended: false };
  }
  try {
    await dmsetup(["suspend", name]);
  } catch (error) {
    // Back to the old table: drop the new one, then resume in case the device got suspended after all.
    await dmsetup(["clear", name]).catch(() => undefined);
    const suspended = await resume().then(() => false, () => true);
    return { name, step: "suspend", message: messageOf(error), suspended };
  }
  try {
    await resume();
    return undefined;
  } catch (error) {
    // Never leave the device suspended: the root would hang. A second resume swaps the new table in if it
    // is still waiting, or resumes the old one if the swap itself was refused: ask the kernel which.
    if (!(await resume().then(() => true, () => false))) return { name, step: "resume", message: messageOf(error), suspended: true };
    const live = await dmsetup(["table", name]).catch(() => "");
    const lines = live.split("\n");
    if (lines.some((line) => references(line, devices.toText)) && !lines.some((line) => references(line, devices.fromText))) return undefined;
    return { name, step: "resume", message: messageOf(error), suspended: false };
  }
}
