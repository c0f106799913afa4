// netimport attach IMAGE [--partition=root|usr|whole|N] [--link=PATH] [--usr-link=PATH] [--tmpfs-root=PATH]
//                        [--roothash=HEX] [--usrhash=HEX] [--rw|--ro]
import { attachImage, describeOutcome, type PartitionSelector } from "./loop-attach.ts";
import { commandLine, runSubcommand, UsageError } from "./command-line.ts";
import { checkDeviceMapperName } from "./verity-device.ts";

const USAGE = "Usage: netimport attach IMAGE [--partition=root|usr|whole|N] [--link=PATH] [--usr-link=PATH] [--tmpfs-root=PATH]\n" +
  "                        [--roothash=HEX] [--usrhash=HEX] [--rw|--ro] [--mapper-prefix=NAME] [--require-verity]\n";

export interface AttachArgs {
  image: string;
  link?: string;
  usrLink?: string;
  tmpfsRoot?: string;
  rootHash?: string;
  usrHash?: string;
  partition: PartitionSelector;
  readOnly: boolean;
  mapperPrefix?: string;
  requireVerity?: boolean;
}

/** A root hash as the kernel command line gives it: hex, an even number of digits, at least 128 bits. */
function parseHash(option: string, value: string): string {
  if (!/^(?:[0-9a-fA-F]{2}){16,}$/.test(value)) throw new UsageError(`${option} takes a root hash in hexadecimal (at least 32 digits), not '${value}'`);
  return value.toLowerCase();
}

function parsePath(option: string, value: string): string {
  if (!value) throw new UsageError(`${option} needs a path`);
  return value;
}

const ATTACH_OPTIONS = {
  partition: { type: "string" }, link: { type: "string" }, "usr-link": { type: "string" }, "tmpfs-root": { type: "string" },
  roothash: { type: "string" }, usrhash: { type: "string" }, rw: { type: "boolean" }, ro: { type: "boolean" },
  "mapper-prefix": { type: "string" }, "require-verity": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** Parses the attach command line; throws a UsageError with a one-line reason on a bad one. */
export function parseAttachArgs(argv: readonly string[]): AttachArgs | "help" {
  let image: string | undefined;
  const paths: Partial<Pick<AttachArgs, "link" | "usrLink" | "tmpfsRoot" | "rootHash" | "usrHash" | "mapperPrefix" | "requireVerity">> = {};
  let partition: PartitionSelector = "root";
  let readOnly = true;
  for (const token of commandLine(argv, ATTACH_OPTIONS, { unknownOption: (option) => `unknown option '${option}'` })) {
    if (token.kind === "positional") {
      if (image !== undefined) throw new UsageError(`unexpected argument '${token.value}'`);
      image = token.value;
      continue;
    }
    const key = `--${token.name}`;
    const value = token.value ?? "";
    switch (token.name) {
      case "help": return "help";
      case "rw": readOnly = false; break;
      case "ro": readOnly = true; break;
      case "link": paths.link = parsePath(key, value); break;
      case "usr-link": paths.usrLink = parsePath(key, value); break;
      case "tmpfs-root": paths.tmpfsRoot = parsePath(key, value); break;
      case "roothash": paths.rootHash = parseHash(key, value); break;
      case "usrhash": paths.usrHash = parseHash(key, value); break;
      case "mapper-prefix":
        try {
          checkDeviceMapperName(`${value}-p128`);
        } catch {
          throw new UsageError(`--mapper-prefix takes a device-mapper name (letters, digits and . _ + : @ = -), not '${value}'`);
        }
        paths.mapperPrefix = value;
        break;
      case "require-verity": paths.requireVerity = true; break;
      case "partition":
        if (value === "root" || value === "usr" || value === "whole") partition = value;
        else if (/^[1-9][0-9]*$/.test(value)) partition = Number(value);
        else throw new UsageError(`--partition takes root, usr, whole or a partition number, not '${value}'`);
        break;
      default: throw new UsageError(`unknown option '${key}'`); // in ATTACH_OPTIONS but not here
    }
  }
  if (image === undefined) throw new UsageError("missing IMAGE");
  if (partition !== "root" && paths.usrLink !== undefined) throw new UsageError("--usr-link goes with --partition=root only");
  if (paths.tmpfsRoot !== undefined && paths.usrLink === undefined) throw new UsageError("--tmpfs-root goes with --usr-link (the /usr of an image without a root partition)");
  if (partition !== "root" && paths.rootHash !== undefined) throw new UsageError("--roothash goes with --partition=root only");
  if (paths.usrHash !== undefined && partition !== "usr" && paths.usrLink === undefined) {
    throw new UsageError("--usrhash goes with --partition=usr, or with --usr-link");
  }
  return { image, partition, readOnly, ...paths };
}

export function runAttach(argv: string[]): Promise<number> {
  return runSubcommand("attach", USAGE, argv, parseAttachArgs, async ({ image, ...options }) => describeOutcome(await attachImage(image, options)));
}
