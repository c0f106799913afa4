// Creates and removes the dm-verity device with dmsetup, the one device-mapper tool the initrd carries
// (veritysetup's libcryptsetup would bring much more). dmsetup runs with --noudevsync: with udev
// synchronisation it waits for udev's device-mapper rules (95-dm-notify.rules) to signal completion, and
// an initrd without those rules would wait forever. `dmsetup mknodes NAME` then makes /dev/mapper/NAME
// (Debian's libdevmapper makes no node itself when udev does not run; when udev runs, its rules may
// replace the node with their symlink, which is as good).
import { stat } from "node:fs/promises";
import { runTool } from "./system-tools.ts";

/** A name dmsetup accepts unchanged (no mangling) and that fits the kernel's 128-byte limit. */
export function checkDeviceMapperName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._+:@=-]{0,126}$/.test(name)) {
    throw new Error(`'${name}' is not a device-mapper name: use up to 127 letters, digits and . _ + : @ = -`);
  }
}

/** The device node of a device-mapper device. */
const mapperPath = (name: string) => `/dev/mapper/${name}`;

/** True when a device-mapper device of that name exists. */
async function deviceMapperExists(name: string): Promise<boolean> {
  try {
    await runTool("dmsetup", ["info", name]);
    return true;
  } catch (error) {
    if ((error as Error).message.endsWith("is not installed")) throw error;
    return false;
  }
}

/**
 * Creates the read-only device NAME with one table line and makes sure its node exists. Returns the node.
 * Refuses to touch an existing device of that name.
 *
 * ```ts
 * await createReadOnlyDevice("netimport-root", table);   // "/dev/mapper/netimport-root"
 * ```
 */
export async function createReadOnlyDevice(name: string, table: string): Promise<string> {
  checkDeviceMapperName(name);
  if (await deviceMapperExists(name)) throw new Error(`a device-mapper device named ${name} already exists`);
  await runTool("dmsetup", ["create", name, "--readonly", "--noudevsync", "--table", table]);
  try {
    await runTool("dmsetup", ["mknodes", name]);
    const node = mapperPath(name);
    const info = await stat(node).catch(() => undefined);
    if (!info?.isBlockDevice()) throw new Error(`dmsetup created ${name}, but ${node} is not a block device`);
    return node;
  } catch (error) {
    await removeDevice(name);
    throw error;
  }
}

/**
 * Removes the device NAME (retrying while udev still holds it open) and its node, which libdevmapper leaves
 * behind when udev does not run; ignores a device that is gone.
 */
export async function removeDevice(name: string): Promise<void> {
  await runTool("dmsetup", ["remove", "--retry", "--noudevsync", name]).catch(() => undefined);
  await runTool("dmsetup", ["mknodes", name]).catch(() => undefined);
}
