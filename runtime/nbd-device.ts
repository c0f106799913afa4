// Connects the kernel's NBD driver to our own NBD server on a Unix socket with nbd-client, and lets go of
// it again. nbd-client (3.24 and later, as Debian ships it) configures the device over the kernel's netlink
// interface (its default since 3.17): it connects, negotiates, hands the socket to the kernel and exits, so
// no nbd-client process stays behind that switch-root or shutdown could kill. The server answers in this
// very process, so nbd-client must run asynchronously: a synchronous run would wait for a negotiation the
// blocked event loop never serves.
//
// The device: nbd-client is given none, so the kernel picks a free one itself (NBD_CMD_CONNECT without an
// index takes the first unconfigured device under the driver's index lock, or adds one), which no
// concurrent user of /dev/nbd* can race, and reports it ("Connected /dev/nbdN").
//
// The timeout: none is set, on purpose. nbd-client sends NBD_ATTR_TIMEOUT only when -timeout is given; with
// none the driver's tag_set.timeout stays 0, and when the block layer's own 30 s timer fires
// (BLK_DEFAULT_CMD_TIMEOUT) drivers/block/nbd.c's nbd_xmit_timeout() only logs "Possible stuck request …"
// and resets the timer ("Userspace sets timeout=0 to disable socket disconnection, so just warn and reset
// the timer"). A read thus waits for as long as the server needs, through a network outage, instead of
// failing the root file system's I/O; if the server itself dies, its socket closes and the requests fail
// at once. With a timeout the driver would instead declare the connection dead and fail I/O after it.
//
// The block size: 4096 by default. The loop device that later replaces /dev/nbdN under device-mapper
// should have the same logical block size (`losetup --sector-size 4096`), so the retargeted tables keep
// their queue limits.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { sleep } from "./backoff.ts";
import type { DeviceNumber } from "./device-number.ts";
import { findExecutable, runTool } from "./system-tools.ts";

/** Runs a tool with these arguments; its stdout, or an Error saying why it failed. */
export type ToolRunner = (args: string[]) => Promise<string>;

export interface NbdConnectOptions {
  /** The server's Unix socket (an absolute path). */
  socketPath: string;
  /** The export to ask the server for (NBD_OPT_GO). */
  exportName: string;
  /** The device's logical block size: 512, 1024, 2048 or 4096 (default 4096). */
  blockSize?: number;
  /** Seconds after which the kernel gives up on a request (default: never, see the top of this file). */
  timeoutSec?: number;
  /** Where sysfs is (default /sys; tests give a directory of their own). */
  sysfs?: string;
  /** PATH to find nbd-client on (default: PATH, else systemd's default PATH). */
  path?: string;
  /** Runs nbd-client (default: the one found on PATH). */
  nbdClient?: ToolRunner;
  /** Runs modprobe (default: modprobe from PATH). */
  modprobe?: ToolRunner;
  /** How long to wait for the connected device to show its size, in milliseconds (default 10 s). */
  settleMs?: number;
}

export interface NbdDevice {
  /** "/dev/nbdN". */
  device: string;
  number: DeviceNumber;
}

const BLOCK_SIZES = [512, 1024, 2048, 4096];

/** nbd-client's arguments for connecting the socket's export read-only to a device the kernel picks. */
function connectArguments(options: NbdConnectOptions): string[] {
  const { socketPath, exportName, blockSize = 4096, timeoutSec } = options;
  if (!isAbsolute(socketPath)) throw new Error(`the NBD socket must be an absolute path, not ${socketPath}`);
  // nbd-client takes a first argument that starts so for a device to look up in its nbdtab.
  if (socketPath.startsWith("/dev/nbd")) throw new Error(`${socketPath} cannot be the NBD socket: nbd-client would read it as a device`);
  if (!exportName) throw new Error("the NBD export name must not be empty");
  if (!BLOCK_SIZES.includes(blockSize)) throw new Error(`the NBD block size must be one of ${BLOCK_SIZES.join(", ")}, not ${blockSize}`);
  if (timeoutSec !== undefined && !(Number.isInteger(timeoutSec) && timeoutSec > 0)) throw new Error(`the NBD timeout must be a whole number of seconds above 0, not ${timeoutSec}`);
  return [
    "-unix", socketPath, "-N", exportName, "-b", String(blockSize), "-readonly",
    ...(timeoutSec !== undefined ? ["-timeout", String(timeoutSec)] : []),
  ];
}

/** Loads the nbd module unless the driver is there already (built in, loaded, or with devices). */
async function ensureNbdDriver(sysfs: string, modprobe: ToolRunner): Promise<void> {
  const present = () => existsSync(join(sysfs, "module/nbd")) || existsSync(join(sysfs, "block/nbd0"));
  if (present()) return;
  try {
    await modprobe(["nbd"]);
  } catch (error) {
    throw new Error(`the kernel's nbd module is not available (${(error as Error).message})`);
  }
  if (!present()) throw new Error(`the kernel's nbd module is not available (modprobe nbd succeeded, but ${join(sysfs, "module/nbd")} does not exist)`);
}

/** The size in 512-byte sectors sysfs shows for the device, 0 while it has none (or no such device). */
async function sectorsOf(sysfs: string, name: string): Promise<number> {
  const text = await readFile(join(sysfs, "block", name, "size"), "utf8").catch(() => "0");
  return Number.parseInt(text.trim(), 10) || 0;
}

/**
 * Connects the export `exportName` of the NBD server at `socketPath` to a free /dev/nbdN, read-only,
 * loading the nbd module first when needed; resolves once the device shows its size.
 *
 * ```ts
 * const { device, number } = await connectNbd({ socketPath: "/run/netimport/root.sock", exportName: "root.raw" });
 * // device "/dev/nbd0", number { major: 43, minor: 0 }
 * ```
 */
export async function connectNbd(options: NbdConnectOptions): Promise<NbdDevice> {
  const args = connectArguments(options);
  const sysfs = options.sysfs ?? "/sys";
  let nbdClient = options.nbdClient;
  if (!nbdClient) {
    const program = findExecutable("nbd-client", options.path);
    if (!program) throw new Error("nbd-client is not installed: a lazy image needs it (Debian's nbd-client package) in the initrd");
    nbdClient = (argv) => runTool(program, argv);
  }
  await ensureNbdDriver(sysfs, options.modprobe ?? ((argv) => runTool("modprobe", argv)));
  const output = await nbdClient(args);
  const connected = /^Connected \/dev\/(nbd\d+)$/m.exec(output);
  if (!connected) throw new Error(`nbd-client connected no device it named (it printed ${JSON.stringify(output.trim())})`);
  const name = connected[1]!;
  const device = `/dev/${name}`;
  try {
    const deadline = Date.now() + (options.settleMs ?? 10_000);
    while ((await sectorsOf(sysfs, name)) === 0) {
      if (Date.now() >= deadline) throw new Error(`${device} was connected, but shows no size in ${join(sysfs, "block", name, "size")}`);
      await sleep(20);
    }
    const dev = (await readFile(join(sysfs, "block", name, "dev"), "utf8")).trim();
    const numbers = /^(\d+):(\d+)$/.exec(dev);
    if (!numbers) throw new Error(`${join(sysfs, "block", name, "dev")} holds ${JSON.stringify(dev)}, not MAJOR:MINOR`);
    return { device, number: { major: Number(numbers[1]), minor: Number(numbers[2]) } };
  } catch (error) {
    await disconnectNbd(device, nbdClient).catch(() => undefined);
    throw error;
  }
}

/**
 * Disconnects `device` ("/dev/nbdN") with `nbd-client -d`, through `run` (default: nbd-client from PATH;
 * the lazy daemon passes the tool kit's after switch-root). nbd-client only parses the number out of that
 * string ("/dev/nbd%d" in 3.24 to 3.26) and sends NBD_CMD_DISCONNECT over netlink: it opens no device
 * node, so the name is always /dev/nbdN, wherever the caller's /dev is.
 *
 * ```ts
 * await disconnectNbd("/dev/nbd0", (args) => kit.run("nbd-client", args));
 * ```
 */
export async function disconnectNbd(device: string, run: ToolRunner = (args) => runTool("nbd-client", args)): Promise<void> {
  if (!/^\/dev\/nbd\d+$/.test(device)) throw new Error(`${device} is not an NBD device (/dev/nbdN)`);
  await run(["-d", device]);
}
