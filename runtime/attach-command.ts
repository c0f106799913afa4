// netimport attach IMAGE [--partition=root|usr|whole|N] [--link=PATH] [--usr-link=PATH] [--tmpfs-root=PATH]
//                        [--roothash=HEX] [--usrhash=HEX] [--rw|--ro]
import { attachImage, describeOutcome, type PartitionSelector } from "./loop-attach.ts";
import { logText } from "../generator/log-line.ts";

const USAGE = "Usage: netimport attach IMAGE [--partition=root|usr|whole|N] [--link=PATH] [--usr-link=PATH] [--tmpfs-root=PATH]\n" +
  "                        [--roothash=HEX] [--usrhash=HEX] [--rw|--ro]\n";

export interface AttachArgs {
  image: string;
  link?: string;
  usrLink?: string;
  tmpfsRoot?: string;
  rootHash?: string;
  usrHash?: string;
  partition: PartitionSelector;
  readOnly: boolean;
}

/** A root hash as the kernel command line gives it: hex, an even number of digits, at least 128 bits. */
function parseHash(option: string, value: string | undefined): string {
  if (!value || !/^(?:[0-9a-fA-F]{2}){16,}$/.test(value)) throw new Error(`${option} takes a root hash in hexadecimal (at least 32 digits), not '${value ?? ""}'`);
  return value.toLowerCase();
}

function parsePath(option: string, value: string | undefined): string {
  if (!value) throw new Error(`${option} needs a path`);
  return value;
}

/** Parses the attach command line; throws a one-line reason on a bad one. */
export function parseAttachArgs(argv: string[]): AttachArgs | "help" {
  let image: string | undefined;
  const paths: Partial<Pick<AttachArgs, "link" | "usrLink" | "tmpfsRoot" | "rootHash" | "usrHash">> = {};
  let partition: PartitionSelector = "root";
  let readOnly = true;
  for (const arg of argv) {
    const [key, value] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    if (key === "--help" || key === "-h") return "help";
    else if (key === "--rw") readOnly = false;
    else if (key === "--ro") readOnly = true;
    else if (key === "--link") paths.link = parsePath(key, value);
    else if (key === "--usr-link") paths.usrLink = parsePath(key, value);
    else if (key === "--tmpfs-root") paths.tmpfsRoot = parsePath(key, value);
    else if (key === "--roothash") paths.rootHash = parseHash(key, value);
    else if (key === "--usrhash") paths.usrHash = parseHash(key, value);
    else if (key === "--partition") {
      if (value === "root" || value === "usr" || value === "whole") partition = value;
      else if (value !== undefined && /^[1-9][0-9]*$/.test(value)) partition = Number(value);
      else throw new Error(`--partition takes root, usr, whole or a partition number, not '${value ?? ""}'`);
    } else if (arg.startsWith("-")) throw new Error(`unknown option '${arg}'`);
    else if (image === undefined) image = arg;
    else throw new Error(`unexpected argument '${arg}'`);
  }
  if (image === undefined) throw new Error("missing IMAGE");
  if (partition !== "root" && paths.usrLink !== undefined) throw new Error("--usr-link goes with --partition=root only");
  if (paths.tmpfsRoot !== undefined && paths.usrLink === undefined) throw new Error("--tmpfs-root goes with --usr-link (the /usr of an image without a root partition)");
  if (partition !== "root" && paths.rootHash !== undefined) throw new Error("--roothash goes with --partition=root only");
  if (paths.usrHash !== undefined && partition !== "usr" && paths.usrLink === undefined) {
    throw new Error("--usrhash goes with --partition=usr, or with --usr-link");
  }
  return { image, partition, readOnly, ...paths };
}

export async function runAttach(argv: string[]): Promise<number> {
  let args: AttachArgs | "help";
  try {
    args = parseAttachArgs(argv);
  } catch (error) {
    process.stderr.write(`netimport attach: ${logText((error as Error).message)}\n${USAGE}`);
    return 2;
  }
  if (args === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    const { image, ...options } = args;
    const outcome = await attachImage(image, options);
    for (const line of describeOutcome(outcome)) process.stdout.write(`${logText(line)}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`netimport attach: ${logText((error as Error).message)}\n`);
    return 1;
  }
}
