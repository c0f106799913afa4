// Attaches an image (its root or /usr partition, a chosen one, or all of it) to loop devices with losetup
// and links stable paths to them. No partition scan is needed: each loop device covers exactly one
// partition, via --offset and --sizelimit. A DDI's root or /usr partition with a verity partition is
// attached with it (both read-only), for `netimport verity` to put dm-verity on top: then LINK.data and
// LINK.hash name the two loop devices and LINK.verity-sig holds the signature partition's JSON.
import { execFile } from "node:child_process";
import { mkdir, open, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import type { Stats } from "node:fs";
import { dirname, basename, join } from "node:path";
import { promisify } from "node:util";
import { designatorOf, GPT_FLAG_READ_ONLY, partitionTypeFor, pickPartition, readGpt, rootPartitionTypeFor, type Partition, type PartitionTable } from "./gpt.ts";
import { pairVerityPartitions, partitionsOfType, type Kind, type Pairing } from "./verity-pairing.ts";
import { parseVeritySig, VERITY_SIG_MAX_SIZE, type VeritySig } from "./verity-sig.ts";
import { deviceNumberOf } from "./device-number.ts";
import { checkDeviceMapperName, createReadOnlyDevice, removeDevice } from "./verity-device.ts";
import { runTool } from "./system-tools.ts";

const run = promisify(execFile);

export type PartitionSelector = "root" | "usr" | "whole" | number;

export interface AttachOptions {
  partition?: PartitionSelector;
  readOnly?: boolean;
  /** Symlink to create for the chosen partition (with verity: LINK.data, LINK.hash, LINK.verity-sig). */
  link?: string;
  /** With partition "root": also attach the image's /usr partition, if it has one, and link it here. */
  usrLink?: string;
  /**
   * With partition "root" and usrLink: where an image with /usr but no root partition gets its root,
   * an empty tmpfs mounted here (what root=tmpfs gives; /sysroot in the initrd). Without it such an
   * image is refused with a hint to boot it with root=tmpfs.
   */
  tmpfsRoot?: string;
  /** The root partition's verity root hash (roothash=), hex; demands verity. */
  rootHash?: string;
  /** The /usr partition's verity root hash (usrhash=), hex; demands verity. */
  usrHash?: string;
  /** Architecture whose partition types count (Node's names; default process.arch). */
  arch?: string;
  /**
   * Attach partitions as device-mapper linear devices PREFIX-pN (PREFIX for the whole image) instead of
   * loop devices: a table can be reloaded, which is how a lazy image's root moves from its NBD device to
   * the local copy without a remount. IMAGE must then be a block device.
   */
  mapperPrefix?: string;
  /** Refuse a root or /usr partition without a verity partition (a lazy image read from the network). */
  requireVerity?: boolean;
}

export interface Attachment {
  kind: "loop" | "linear";
  image: string;
  device: string;
  readOnly: boolean;
  /** Why the device is read-only whatever was asked for ("verity", "GPT read-only flag"). */
  readOnlyReason?: string;
  /** The partition attached, or undefined for the whole image. */
  partition?: Partition;
  /** What the partition is for ("root", "usr-verity", …), when it has a DPS type of this architecture. */
  designator?: string;
  /** Why the whole image was attached, when a partition was not. */
  wholeReason?: string;
  offset: number;
  size: number;
  fsType?: string;
  link?: string;
  /** "data": a file system (with verity under it: LINK.data); "hash": a verity hash tree (LINK.hash). */
  role: "plain" | "data" | "hash";
  /** How the partition was chosen among several. */
  notes?: string[];
}

/** A signature partition copied to LINK.verity-sig. */
export interface SignatureCopy {
  kind: "signature";
  image: string;
  partition: Partition;
  designator: string;
  rootHash: string;
  path: string;
}

/** The empty tmpfs mounted as the root of a /usr-only image. */
export interface TmpfsRoot {
  kind: "tmpfs-root";
  image: string;
  path: string;
}

export interface AttachOutcome {
  attachments: Attachment[];
  signatures: SignatureCopy[];
  /** All of them, in the order they happened (the order of the output lines). */
  steps: (Attachment | SignatureCopy | TmpfsRoot)[];
}


const temporaryNameFor = (path: string) => join(dirname(path), `.#${basename(path)}.${process.pid}`);

/** Replaces (or creates) the symlink `path` → `target` atomically: a temporary link renamed over it. */
export async function linkAtomically(target: string, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = temporaryNameFor(path);
  await rm(temporary, { force: true });
  await symlink(target, temporary);
  try {
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** Replaces (or creates) the file `path` with `text` atomically, so a reader sees all of it or none. */
async function writeAtomically(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = temporaryNameFor(path);
  await rm(temporary, { force: true });
  await writeFile(temporary, text, { mode: 0o644, flag: "wx" });
  try {
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** Detaches a loop device (ignores one that is already gone). */
async function detachLoop(device: string): Promise<void> {
  await runTool("losetup", ["--detach", device]).catch(() => undefined);
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

/** Undo steps for what one attach call made, run newest first when a later step fails. */
class Undo {
  private readonly steps: (() => Promise<void>)[] = [];
  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }
  async run(): Promise<void> {
    for (const step of this.steps.reverse()) await step().catch(() => undefined);
  }
}

interface Context {
  image: string;
  info: Stats;
  /** The image's size in bytes (a block device's from sysfs: stat() says 0). */
  size: number;
  mapperPrefix: string | undefined;
  requireVerity: boolean;
  readOnly: boolean;
  arch: string;
  undo: Undo;
  outcome: AttachOutcome;
}

type LoopRequest = Pick<Attachment, "partition" | "wholeReason" | "role" | "notes" | "readOnlyReason"> & { readOnly: boolean; link?: string };

/** Attaches one partition (or the whole image) to a free loop device and links it. */
async function attachLoop(ctx: Context, request: LoopRequest): Promise<Attachment> {
  const { image } = ctx;
  const { partition } = request;
  const offset = partition?.offset ?? 0;
  const size = partition?.size ?? ctx.size;
  if (partition && offset + size > ctx.size) {
    throw new Error(`partition ${partition.number} of ${image} ends at byte ${offset + size}, beyond the end of the image (${ctx.size} bytes): truncated image?`);
  }
  const device = ctx.mapperPrefix === undefined
    ? await losetup(ctx, request.readOnly, partition ? { offset, size } : undefined)
    : await linearDevice(ctx, `${ctx.mapperPrefix}${partition ? `-p${partition.number}` : ""}`, offset, size);
  const fsType = await probeFsType(device);
  if (request.link) {
    const link = request.link;
    await linkAtomically(device, link);
    ctx.undo.add(() => rm(link, { force: true }));
  }
  const designator = partition ? designatorOf(partition.type, ctx.arch) : undefined;
  const attachment: Attachment = {
    kind: ctx.mapperPrefix === undefined ? "loop" : "linear", image, device, readOnly: request.readOnly, offset, size, role: request.role,
    ...(request.readOnlyReason ? { readOnlyReason: request.readOnlyReason } : {}),
    ...(partition ? { partition } : {}),
    ...(designator ? { designator } : {}),
    ...(request.wholeReason ? { wholeReason: request.wholeReason } : {}),
    ...(fsType ? { fsType } : {}),
    ...(request.link ? { link: request.link } : {}),
    ...(request.notes?.length ? { notes: request.notes } : {}),
  };
  ctx.outcome.attachments.push(attachment);
  ctx.outcome.steps.push(attachment);
  return attachment;
}

/** A free loop device over the image (or the byte range of one partition), undone on a later failure. */
async function losetup(ctx: Context, readOnly: boolean, range: { offset: number; size: number } | undefined): Promise<string> {
  const args = ["--find", "--show"];
  if (readOnly) args.push("--read-only");
  if (range) args.push(`--offset=${range.offset}`, `--sizelimit=${range.size}`);
  args.push(ctx.image);
  const device = (await runTool("losetup", args)).trim();
  if (!device.startsWith("/dev/")) throw new Error(`losetup printed no device (${JSON.stringify(device)})`);
  ctx.undo.add(() => detachLoop(device));
  return device;
}

/**
 * A read-only device-mapper linear device NAME over bytes [offset, offset + size) of the image, a block
 * device; undone on a later failure. GPT partitions start and end on logical blocks, so on sectors.
 */
async function linearDevice(ctx: Context, name: string, offset: number, size: number): Promise<string> {
  if (offset % 512 !== 0 || size % 512 !== 0) throw new Error(`${name}: ${ctx.image} bytes ${offset}+${size} do not fall on 512-byte sectors`);
  const { major, minor } = deviceNumberOf(ctx.info);
  const device = await createReadOnlyDevice(name, `0 ${size / 512} linear ${major}:${minor} ${offset / 512}`);
  ctx.undo.add(() => removeDevice(name));
  return device;
}

/** The size of IMAGE: a file's from stat(), a block device's from sysfs (in 512-byte sectors there). */
async function imageSize(info: Stats): Promise<number> {
  if (!info.isBlockDevice()) return info.size;
  const { major, minor } = deviceNumberOf(info);
  return Number((await readFile(`/sys/dev/block/${major}:${minor}/size`, "utf8")).trim()) * 512;
}

/** Reads and parses the `-verity-sig` partitions of `kind`, by partition number. */
async function readSignatures(ctx: Context, table: PartitionTable, kind: Kind): Promise<Map<number, VeritySig>> {
  const result = new Map<number, VeritySig>();
  const partitions = partitionsOfType(table.partitions, partitionTypeFor(`${kind}-verity-sig`, ctx.arch));
  if (partitions.length === 0) return result;
  const file = await open(ctx.image, "r");
  try {
    for (const p of partitions) {
      const where = `the ${kind}-verity-sig partition ${p.number} of ${ctx.image}`;
      if (p.size > VERITY_SIG_MAX_SIZE) throw new Error(`${where} is larger than 4 MiB, which no signature needs`);
      const bytes = Buffer.alloc(p.size);
      const { bytesRead } = await file.read(bytes, 0, p.size, p.offset);
      if (bytesRead !== p.size) throw new Error(`${where} lies beyond the end of the image: truncated image?`);
      result.set(p.number, parseVeritySig(bytes, where));
    }
  } finally {
    await file.close();
  }
  return result;
}

/**
 * Attaches a paired partition at `link`: alone (LINK → loop), or with verity (LINK.data, LINK.hash and,
 * when signed, the file LINK.verity-sig; LINK itself is left to `netimport verity`).
 */
async function attachPairing(ctx: Context, pairing: Pairing, link: string | undefined): Promise<void> {
  const flaggedReadOnly = (pairing.data.attributes & GPT_FLAG_READ_ONLY) !== 0n;
  if (!pairing.verity && ctx.requireVerity) throw unverifiable(ctx, `its ${pairing.kind} partition ${pairing.data.number} has no ${pairing.kind}-verity partition`);
  if (!pairing.verity) {
    // The verity units start when LINK.hash exists: nothing left from an earlier attach may say so.
    if (link) for (const suffix of [".data", ".hash", ".verity-sig"]) await rm(`${link}${suffix}`, { force: true });
    await attachLoop(ctx, {
      partition: pairing.data, role: "plain", notes: pairing.notes,
      readOnly: ctx.readOnly || flaggedReadOnly,
      ...(!ctx.readOnly && flaggedReadOnly ? { readOnlyReason: "GPT read-only flag" } : {}),
      ...(link ? { link } : {}),
    });
    return;
  }
  // dm-verity devices are read-only, and so is what lies under them, whatever --rw asked for.
  await attachLoop(ctx, {
    partition: pairing.data, role: "data", notes: pairing.notes, readOnly: true, readOnlyReason: "verity",
    ...(link ? { link: `${link}.data` } : {}),
  });
  await attachLoop(ctx, { partition: pairing.verity, role: "hash", readOnly: true, ...(link ? { link: `${link}.hash` } : {}) });
  if (!link) return;
  const sigPath = `${link}.verity-sig`;
  if (pairing.signature) {
    await writeAtomically(sigPath, `${pairing.signature.content.json}\n`);
    ctx.undo.add(() => rm(sigPath, { force: true }));
    const copy: SignatureCopy = {
      kind: "signature", image: ctx.image, partition: pairing.signature.partition, designator: `${pairing.kind}-verity-sig`,
      rootHash: pairing.signature.content.rootHash, path: sigPath,
    };
    ctx.outcome.signatures.push(copy);
    ctx.outcome.steps.push(copy);
  } else {
    // A signature left from an earlier attach must not speak for this image.
    await rm(sigPath, { force: true });
  }
}

/** Why an image that must be verified block by block (--require-verity) cannot be. */
function unverifiable(ctx: Context, why: string): Error {
  return new Error(`${ctx.image} cannot be checked block by block: ${why}. A lazy image is read from the network, so it must be a DDI with dm-verity (or be booted with verify=no)`);
}

function checkOptions(selector: PartitionSelector, options: AttachOptions): void {
  if (selector !== "root" && (options.usrLink !== undefined || options.rootHash !== undefined)) {
    throw new Error(`${options.usrLink !== undefined ? "--usr-link" : "--roothash"} goes with --partition=root only`);
  }
  if (options.usrHash !== undefined && selector !== "usr" && !(selector === "root" && options.usrLink !== undefined)) {
    throw new Error("--usrhash goes with --partition=usr, or with --usr-link");
  }
}

/**
 * Attaches `image` as systemd would boot it: its root (or /usr) partition of this architecture with its
 * verity partitions, partition N, or the whole image (no GPT, or no root partition). Links LINK (or
 * LINK.data, LINK.hash and LINK.verity-sig with verity), and USR_LINK likewise for the /usr partition.
 *
 * ```ts
 * const outcome = await attachImage("/run/machines/os.raw", { link: "/run/netimport/root" });
 * for (const line of describeOutcome(outcome)) console.log(line);
 * // Attached root partition 2 "root-x86-64" (ext4) of … at /dev/loop0 (read-only), linked at …
 * ```
 * On any failure every loop device attached and every link and file written is removed again.
 */
export async function attachImage(image: string, options: AttachOptions = {}): Promise<AttachOutcome> {
  const selector = options.partition ?? "root";
  checkOptions(selector, options);
  const info = await stat(image).catch((error: NodeJS.ErrnoException) => {
    throw new Error(error.code === "ENOENT" ? `${image} does not exist` : `cannot access ${image}: ${error.message}`);
  });
  if (!info.isFile() && !info.isBlockDevice()) throw new Error(`${image} is not a regular file or block device`);
  if (options.mapperPrefix !== undefined && !info.isBlockDevice()) throw new Error(`--mapper-prefix needs a block device, and ${image} is not one`);
  if (options.mapperPrefix !== undefined) checkDeviceMapperName(`${options.mapperPrefix}-p128`);
  const table = await readGpt(image);
  const ctx: Context = {
    image, info, size: await imageSize(info), mapperPrefix: options.mapperPrefix, requireVerity: options.requireVerity ?? false, readOnly: options.readOnly ?? true, arch: options.arch ?? process.arch, undo: new Undo(),
    outcome: { attachments: [], signatures: [], steps: [] },
  };
  const link = options.link;
  try {
    if (ctx.requireVerity && selector !== "root" && selector !== "usr") throw unverifiable(ctx, `--partition=${selector} attaches no verity partition`);
    if (typeof selector === "number") {
      if (!table) throw new Error(`${image} has no GPT partition table, so it has no partition ${selector}`);
      const partition = pickPartition(table.partitions, selector);
      if (!partition) throw new Error(`${image} has no partition ${selector} (it has ${table.partitions.map((p) => p.number).join(", ") || "none"})`);
      await attachLoop(ctx, { partition, role: "plain", readOnly: ctx.readOnly, ...(link ? { link } : {}) });
    } else if (selector === "whole") {
      await attachLoop(ctx, { wholeReason: "requested", role: "plain", readOnly: ctx.readOnly, ...(link ? { link } : {}) });
    } else if (selector === "usr") {
      if (!table) throw new Error(`${image} has no GPT partition table, so it has no /usr partition`);
      const pairing = pairVerityPartitions({ partitions: table.partitions, kind: "usr", arch: ctx.arch, signatures: await readSignatures(ctx, table, "usr"), ...(options.usrHash ? { rootHash: options.usrHash } : {}) });
      if (!pairing) throw new Error(`${image} has no /usr partition for ${ctx.arch} (type ${partitionTypeFor("usr", ctx.arch) ?? "unknown"})`);
      await attachPairing(ctx, pairing, link);
    } else {
      await attachRoot(ctx, table, options);
    }
    return ctx.outcome;
  } catch (error) {
    await ctx.undo.run();
    throw error;
  }
}

/** `--partition=root`: the root partition (and with --usr-link the /usr one), else the whole image. */
async function attachRoot(ctx: Context, table: PartitionTable | undefined, options: AttachOptions): Promise<void> {
  const { image, arch } = ctx;
  const link = options.link;
  if (!table) {
    if (ctx.requireVerity) throw unverifiable(ctx, "it has no GPT partition table, so no verity partition");
    if (options.rootHash !== undefined || options.usrHash !== undefined) {
      throw new Error(`${options.rootHash !== undefined ? "--roothash" : "--usrhash"} was given, but ${image} has no GPT partition table, so no verity partition`);
    }
    await attachLoop(ctx, { wholeReason: "no GPT", role: "plain", readOnly: ctx.readOnly, ...(link ? { link } : {}) });
    return;
  }
  const root = pairVerityPartitions({ partitions: table.partitions, kind: "root", arch, signatures: await readSignatures(ctx, table, "root"), ...(options.rootHash ? { rootHash: options.rootHash } : {}) });
  if (!root) {
    if (partitionsOfType(table.partitions, partitionTypeFor("usr", arch)).length > 0) {
      if (options.tmpfsRoot === undefined || options.usrLink === undefined || options.rootHash !== undefined) {
        throw new Error(`${image} has a /usr partition but no root partition: boot it with root=tmpfs, which mounts /usr from the image on a tmpfs root, as systemd does`);
      }
      // A /usr-only image: its root is an empty tmpfs, as root=tmpfs makes it (fstab-generator: mode=0755).
      await mountTmpfsRoot(ctx, options.tmpfsRoot);
      const usr = pairVerityPartitions({ partitions: table.partitions, kind: "usr", arch, signatures: await readSignatures(ctx, table, "usr"), ...(options.usrHash ? { rootHash: options.usrHash } : {}) });
      if (usr) await attachPairing(ctx, usr, options.usrLink);
      return;
    }
    if (options.usrHash !== undefined) throw new Error(`--usrhash was given, but ${image} has no /usr partition for ${arch}`);
    if (ctx.requireVerity) throw unverifiable(ctx, `it has no ${arch} root partition, so it would be attached whole, without verity`);
    const wholeReason = `no ${arch} root partition (${rootPartitionTypeFor(arch) ?? "unknown type"}) in its GPT`;
    await attachLoop(ctx, { wholeReason, role: "plain", readOnly: ctx.readOnly, ...(link ? { link } : {}) });
    return;
  }
  await attachPairing(ctx, root, link);
  if (options.usrLink === undefined) return;
  const usr = pairVerityPartitions({ partitions: table.partitions, kind: "usr", arch, signatures: await readSignatures(ctx, table, "usr"), ...(options.usrHash ? { rootHash: options.usrHash } : {}) });
  if (usr) await attachPairing(ctx, usr, options.usrLink);
}

/** Mounts an empty tmpfs at PATH (undone on a later failure). */
async function mountTmpfsRoot(ctx: Context, path: string): Promise<void> {
  await runTool("mount", ["-t", "tmpfs", "-o", "mode=0755", "rootfs", path]);
  ctx.undo.add(() => runTool("umount", [path]).then(() => undefined));
  ctx.outcome.steps.push({ kind: "tmpfs-root", image: ctx.image, path });
}

function readOnlyText(a: Attachment): string {
  if (!a.readOnly) return "read-write";
  return a.readOnlyReason ? `read-only: ${a.readOnlyReason}` : "read-only";
}

/** One line saying what was attached, where, and how. */
function describeAttachment(a: Attachment): string {
  const fs = a.fsType ? ` (${a.fsType})` : "";
  const kind = a.designator ? `${a.designator} partition` : "partition";
  const what = a.partition
    ? `${kind} ${a.partition.number}${a.partition.name ? ` "${a.partition.name}"` : ""}${fs} of ${a.image}`
    : `the whole image ${a.image}${fs}${a.wholeReason && a.wholeReason !== "requested" ? ` (${a.wholeReason})` : ""}`;
  const linked = a.role === "data" ? "data linked" : a.role === "hash" ? "hash tree linked" : "linked";
  const link = a.link ? `, ${linked} at ${a.link}` : "";
  const notes = a.notes?.length ? `; ${a.notes.join("; ")}` : "";
  return `Attached ${what} at ${a.device} (${readOnlyText(a)})${link}${notes}`;
}

/** One line saying which signature partition was copied where. */
function describeSignatureCopy(s: SignatureCopy): string {
  const name = s.partition.name ? ` "${s.partition.name}"` : "";
  return `Copied ${s.designator} partition ${s.partition.number}${name} of ${s.image} (root hash ${s.rootHash}) to ${s.path}`;
}

/** The lines for everything one attach did, in the order it happened. */
export function describeOutcome(outcome: AttachOutcome): string[] {
  return outcome.steps.map((step) => {
    if (step.kind === "signature") return describeSignatureCopy(step);
    if (step.kind === "tmpfs-root") return `${step.image} has /usr but no root partition: mounted an empty tmpfs at ${step.path} as its root, as root=tmpfs does`;
    return describeAttachment(step);
  });
}
