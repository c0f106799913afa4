// netimport attach IMAGE [--link=PATH] [--partition=root|whole|N] [--rw]
import { attachImage, describeAttachment, type PartitionSelector } from "./loop-attach.ts";

const USAGE = "Usage: netimport attach IMAGE [--link=PATH] [--partition=root|whole|N] [--rw|--ro]\n";

interface AttachArgs { image: string; link?: string; partition: PartitionSelector; readOnly: boolean }

/** Parses the attach command line; throws a one-line reason on a bad one. */
export function parseAttachArgs(argv: string[]): AttachArgs | "help" {
  let image: string | undefined;
  let link: string | undefined;
  let partition: PartitionSelector = "root";
  let readOnly = true;
  for (const arg of argv) {
    const [key, value] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    if (key === "--help" || key === "-h") return "help";
    else if (key === "--rw") readOnly = false;
    else if (key === "--ro") readOnly = true;
    else if (key === "--link") {
      if (!value) throw new Error("--link needs a path");
      link = value;
    } else if (key === "--partition") {
      if (value === "root" || value === "whole") partition = value;
      else if (value !== undefined && /^[1-9][0-9]*$/.test(value)) partition = Number(value);
      else throw new Error(`--partition takes root, whole or a partition number, not '${value ?? ""}'`);
    } else if (arg.startsWith("-")) throw new Error(`unknown option '${arg}'`);
    else if (image === undefined) image = arg;
    else throw new Error(`unexpected argument '${arg}'`);
  }
  if (image === undefined) throw new Error("missing IMAGE");
  return { image, partition, readOnly, ...(link ? { link } : {}) };
}

export async function runAttach(argv: string[]): Promise<number> {
  let args: AttachArgs | "help";
  try {
    args = parseAttachArgs(argv);
  } catch (error) {
    process.stderr.write(`netimport attach: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    const attachment = await attachImage(args.image, { partition: args.partition, readOnly: args.readOnly, ...(args.link ? { link: args.link } : {}) });
    process.stdout.write(`${describeAttachment(attachment)}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`netimport attach: ${(error as Error).message}\n`);
    return 1;
  }
}
