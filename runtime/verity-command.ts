// netimport verity NAME --data=PATH --hash=PATH [--roothash=HEX] [--signature=FILE] --link=PATH
//                       [--certificates-dir=DIR]...
// Puts dm-verity over a data device: reads the hash device's superblock, decides the root hash (given, or
// from a signature that verifies), creates the read-only device NAME with dmsetup and links PATH to it.
import { open, readFile, realpath, stat } from "node:fs/promises";
import { basename } from "node:path";
import { linkAtomically } from "./loop-attach.ts";
import { commandLine, runSubcommand, UsageError } from "./command-line.ts";
import { checkDeviceMapperName, createReadOnlyDevice, removeDevice } from "./verity-device.ts";
import { resolveRootHash, type RootHash } from "./verity-root-hash.ts";
import { parseVeritySuperblock, VERITY_SUPERBLOCK_SIZE, type VeritySuperblock } from "./verity-superblock.ts";
import { checkRootHash, verityTable } from "./verity-table.ts";

const USAGE = "Usage: netimport verity NAME --data=PATH --hash=PATH [--roothash=HEX] [--signature=FILE] --link=PATH\n" +
  "                        [--certificates-dir=DIR]...\n";

export interface VerityArgs {
  name: string;
  data: string;
  hash: string;
  link: string;
  rootHash?: string;
  signature?: string;
  /** Replaces systemd's verity.d directories (tests, or an initrd with its own trust store). */
  certificateDirs?: string[];
}

const VERITY_OPTIONS = {
  data: { type: "string" }, hash: { type: "string" }, link: { type: "string" }, roothash: { type: "string" }, signature: { type: "string" },
  "certificates-dir": { type: "string", multiple: true }, help: { type: "boolean", short: "h" },
} as const;

/** Parses the verity command line; throws a UsageError with a one-line reason on a bad one. */
export function parseVerityArgs(argv: readonly string[]): VerityArgs | "help" {
  let name: string | undefined;
  const values: Partial<Record<"data" | "hash" | "link" | "rootHash" | "signature", string>> = {};
  const certificateDirs: string[] = [];
  const keys: Record<string, keyof typeof values> = { data: "data", hash: "hash", link: "link", roothash: "rootHash", signature: "signature" };
  for (const token of commandLine(argv, VERITY_OPTIONS, { unknownOption: (option) => `unknown option '${option}'` })) {
    if (token.kind === "positional") {
      if (name !== undefined) throw new UsageError(`unexpected argument '${token.value}'`);
      name = token.value;
      continue;
    }
    if (token.name === "help") return "help";
    if (!token.value) throw new UsageError(`--${token.name} needs a value`);
    const field = keys[token.name];
    if (field !== undefined) values[field] = token.value;
    else if (token.name === "certificates-dir") certificateDirs.push(token.value);
  }
  if (name === undefined) throw new UsageError("missing NAME");
  try {
    checkDeviceMapperName(name);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  for (const required of ["data", "hash", "link"] as const) {
    if (values[required] === undefined) throw new UsageError(`missing --${required}=PATH`);
  }
  if (values.rootHash !== undefined && !/^(?:[0-9a-fA-F]{2})+$/.test(values.rootHash)) {
    throw new UsageError(`--roothash takes a root hash in hexadecimal, not '${values.rootHash}'`);
  }
  return {
    name, data: values.data!, hash: values.hash!, link: values.link!,
    ...(values.rootHash !== undefined ? { rootHash: values.rootHash.toLowerCase() } : {}),
    ...(values.signature !== undefined ? { signature: values.signature } : {}),
    ...(certificateDirs.length ? { certificateDirs } : {}),
  };
}

/** The block device behind `path` (a link such as LINK.data), checked to be one. */
async function blockDevice(path: string, what: string): Promise<string> {
  const device = await realpath(path).catch((error: NodeJS.ErrnoException) => {
    throw new Error(error.code === "ENOENT" ? `${what} ${path} does not exist` : `cannot resolve ${what} ${path}: ${error.message}`);
  });
  const info = await stat(device);
  if (!info.isBlockDevice()) throw new Error(`${what} ${path} is not a block device`);
  return device;
}

async function readSuperblock(device: string, path: string): Promise<VeritySuperblock> {
  const file = await open(device, "r");
  try {
    const bytes = Buffer.alloc(VERITY_SUPERBLOCK_SIZE);
    const { bytesRead } = await file.read(bytes, 0, bytes.length, 0);
    return parseVeritySuperblock(bytes.subarray(0, bytesRead), `hash device ${path}`);
  } finally {
    await file.close();
  }
}

/** The size of a block device in bytes, from sysfs (Node's stat reports 0 for block devices). */
async function deviceSize(device: string): Promise<number | undefined> {
  const sectors = await readFile(`/sys/class/block/${basename(device)}/size`, "utf8").catch(() => undefined);
  return sectors === undefined ? undefined : Number(sectors.trim()) * 512;
}

export interface VeritySetup {
  name: string;
  node: string;
  link: string;
  data: string;
  superblock: VeritySuperblock;
  rootHash: RootHash;
}

/**
 * Sets up dm-verity as `args` say. On failure after the device was created, it is removed again.
 *
 * ```ts
 * const setup = await setUpVerity({ name: "netimport-root", data: "/run/netimport/root.data",
 *   hash: "/run/netimport/root.hash", signature: "/run/netimport/root.verity-sig", link: "/run/netimport/root" });
 * ```
 */
async function setUpVerity(args: VerityArgs): Promise<VeritySetup> {
  const dataDevice = await blockDevice(args.data, "data device");
  const hashDevice = await blockDevice(args.hash, "hash device");
  const superblock = await readSuperblock(hashDevice, args.hash);
  const decided = await resolveRootHash({
    dataName: args.data,
    ...(args.rootHash !== undefined ? { given: args.rootHash } : {}),
    ...(args.signature !== undefined ? { signatureFile: args.signature } : {}),
    ...(args.certificateDirs ? { certificateDirs: args.certificateDirs } : {}),
  });
  const rootHash: RootHash = { ...decided, rootHash: checkRootHash(decided.rootHash, superblock.algorithm) };
  const covered = superblock.dataBlocks * superblock.dataBlockSize;
  const size = await deviceSize(dataDevice);
  if (size !== undefined && size < covered) {
    throw new Error(`data device ${args.data} holds ${size} bytes, but its hash tree covers ${covered}`);
  }
  const table = verityTable({ dataDevice, hashDevice, superblock, rootHash: rootHash.rootHash });
  const node = await createReadOnlyDevice(args.name, table);
  try {
    await linkAtomically(node, args.link);
  } catch (error) {
    await removeDevice(args.name);
    throw error;
  }
  return { name: args.name, node, link: args.link, data: args.data, superblock, rootHash };
}

/** The one line saying what was set up. */
function describeVerity(setup: VeritySetup): string {
  const { rootHash: h } = setup;
  const short = `${h.rootHash.slice(0, 4)}…${h.rootHash.slice(-2)}`;
  const from = h.from === "given" ? "given" : `from the signed verity-sig partition, certificate ${h.certificateSubject ?? "?"} (${h.certificatePath ?? "?"})`;
  return `Set up dm-verity device ${setup.name} (${setup.superblock.algorithm}, root hash ${short} ${from}) over ${setup.data}, linked at ${setup.link}`;
}

export function runVerity(argv: string[]): Promise<number> {
  return runSubcommand("verity", USAGE, argv, parseVerityArgs, async (args) => [describeVerity(await setUpVerity(args))]);
}
