// Attaches an image (its root partition, a chosen one, or all of it) to a loop device with losetup and
// links a stable path to the device. No partition scan is needed: the loop device covers exactly the
// partition, via --offset and --sizelimit.
import { execFile } from "node:child_process";
import { mkdir, rename, rm, stat, symlink } from "node:fs/promises";
import { dirname, basename, join } from "node:path";
import { promisify } from "node:util";
import { pickPartition, readGpt, rootPartitionTypeFor, type Partition } from "./gpt.ts";

const run = promisify(execFile);

export type PartitionSelector = "root" | "whole" | number;

export interface AttachOptions {
  partition?: PartitionSelector;
  readOnly?: boolean;
  /** Symlink to create, pointing at the loop device. */
  link?: string;
  /** Architecture whose root partition type counts (Node's names; default process.arch). */
  arch?: string;
}

export interface Attachment {
  image: string;
  device: string;
  readOnly: boolean;
  /** The partition attached, or undefined for the whole image. */
  partition?: Partition;
  /** Why the whole image was attached, when a partition was not. */
  wholeReason?: string;
  offset: number;
  size: number;
  fsType?: string;
  link?: string;
}

/** Runs a tool, turning a failure into an Error carrying its stderr's first line. */
async function tool(command: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(command, args, { encoding: "utf8" });
    return stdout;
  } catch (error) {
    const e = error as { code?: string | number; stderr?: string; message: string };
    if (e.code === "ENOENT") throw new Error(`${command} is not installed`);
    const detail = (e.stderr ?? "").trim().split("\n")[0] || e.message;
    throw new Error(`${command} ${args.join(" ")} failed: ${detail}`);
  }
}

/** Replaces (or creates) the symlink `path` → `target` atomically: a temporary link renamed over it. */
export async function linkAtomically(target: string, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = join(dirname(path), `.#${basename(path)}.${process.pid}`);
  await rm(temporary, { force: true });
  await symlink(target, temporary);
  try {
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** Detaches a loop device (ignores one that is already gone). */
export async function detachLoop(device: string): Promise<void> {
  await tool("losetup", ["--detach", device]).catch(() => undefined);
}

/** The file system type blkid probes on `device`, if blkid is there and finds one. */
async function probeFsType(device: string): Promise<string | undefined> {
  try {
    const { stdout } = await run("blkid", ["-p", "-o", "value", "-s", "TYPE", device], { encoding: "utf8", timeout: 5000 });
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Attaches `image` to a free loop device and, with `link`, points a symlink at it.
 *
 * ```ts
 * const a = await attachImage("/run/machines/image.raw", { link: "/run/netimport/root" });
 * console.log(describeAttachment(a)); // "Attached root partition 2 (ext4) of … at /dev/loop0 (read-only), linked at …"
 * ```
 * On any failure after losetup the loop device is detached again.
 */
export async function attachImage(image: string, options: AttachOptions = {}): Promise<Attachment> {
  const selector = options.partition ?? "root";
  const readOnly = options.readOnly ?? true;
  const info = await stat(image).catch((error: NodeJS.ErrnoException) => {
    throw new Error(error.code === "ENOENT" ? `${image} does not exist` : `cannot access ${image}: ${error.message}`);
  });
  if (!info.isFile() && !info.isBlockDevice()) throw new Error(`${image} is not a regular file or block device`);
  const table = await readGpt(image);
  let partition: Partition | undefined;
  let wholeReason: string | undefined;
  if (typeof selector === "number") {
    if (!table) throw new Error(`${image} has no GPT partition table, so it has no partition ${selector}`);
    partition = pickPartition(table.partitions, selector);
    if (!partition) throw new Error(`${image} has no partition ${selector} (it has ${table.partitions.map((p) => p.number).join(", ") || "none"})`);
  } else if (selector === "root") {
    if (!table) wholeReason = "no GPT";
    else {
      partition = pickPartition(table.partitions, "root", options.arch);
      if (!partition) wholeReason = `no ${options.arch ?? process.arch} root partition (${rootPartitionTypeFor(options.arch) ?? "unknown type"}) in its GPT`;
    }
  } else {
    wholeReason = "requested";
  }
  const offset = partition?.offset ?? 0;
  const size = partition?.size ?? info.size;
  if (partition && offset + size > info.size) {
    throw new Error(`partition ${partition.number} of ${image} ends at byte ${offset + size}, beyond the end of the image (${info.size} bytes): truncated image?`);
  }
  const args = ["--find", "--show"];
  if (readOnly) args.push("--read-only");
  if (partition) args.push(`--offset=${offset}`, `--sizelimit=${size}`);
  args.push(image);
  const device = (await tool("losetup", args)).trim();
  if (!device.startsWith("/dev/")) throw new Error(`losetup printed no device (${JSON.stringify(device)})`);
  try {
    const fsType = await probeFsType(device);
    if (options.link) await linkAtomically(device, options.link);
    return {
      image, device, readOnly, offset, size,
      ...(partition ? { partition } : {}),
      ...(wholeReason ? { wholeReason } : {}),
      ...(fsType ? { fsType } : {}),
      ...(options.link ? { link: options.link } : {}),
    };
  } catch (error) {
    await detachLoop(device);
    throw error;
  }
}

/** One line saying what was attached, where, and how. */
export function describeAttachment(a: Attachment): string {
  const fs = a.fsType ? ` (${a.fsType})` : "";
  const root = a.partition && a.partition.type === rootPartitionTypeFor() ? "root partition" : "partition";
  const what = a.partition
    ? `${root} ${a.partition.number}${a.partition.name ? ` "${a.partition.name}"` : ""}${fs} of ${a.image}`
    : `the whole image ${a.image}${fs}${a.wholeReason && a.wholeReason !== "requested" ? ` (${a.wholeReason})` : ""}`;
  const link = a.link ? `, linked at ${a.link}` : "";
  return `Attached ${what} at ${a.device} (${a.readOnly ? "read-only" : "read-write"})${link}`;
}
