// Room for the image where it is written. In the initrd that is /run (or /run/machines), a tmpfs that
// systemd mounts with size=20% of RAM (systemd issue #40994: a big image dies with ENOSPC at 20%). So
// when the image would not fit, or its size is unknown and /run is that small, a dedicated tmpfs is
// mounted on the destination folder: exactly as large as an image of known size, else as large as the
// memory limit for images (half of RAM by default) and the available memory allow. Its size is what
// bounds a decompression bomb: the decoder fails with ENOSPC at the limit, and the failed pull unmounts it.
import { execFile } from "node:child_process";
import { mkdir, readdir, readFile, statfs } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { promisify } from "node:util";
import { parseMemorySize } from "../generator/memory-size.ts";
import { formatBytes } from "./format-bytes.ts";

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;
/** The source name of the tmpfs we mount, so we recognise our own mount later. */
const MOUNT_SOURCE = "netimport";
const MIB = 1024 * 1024;

export interface SpaceOptions {
  /** Replaces /proc/meminfo (tests). */
  meminfoPath?: string;
  /** Replaces /proc/self/mountinfo (tests). */
  mountinfoPath?: string;
  /** Memory left to the system: `keepFraction` of MemTotal plus `keepBytes` (default 10% + 64 MiB). */
  keepFraction?: number;
  keepBytes?: number;
  /** The most memory images in one folder may take (default half of RAM). */
  memoryLimit?: MemoryLimit;
}

export interface SpaceResult {
  /** True when this call mounted the dedicated tmpfs on destDir. */
  mountedTmpfs: boolean;
  /** Bytes available for the image in destDir now. */
  available: number;
}

interface Memory { total: number; available: number }

async function readMemory(path = "/proc/meminfo"): Promise<Memory> {
  const text = await readFile(path, "utf8");
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
    if (!match) throw new Error(`${path} has no ${name}`);
    return Number(match[1]) * 1024;
  };
  return { total: field("MemTotal"), available: field("MemAvailable") };
}

/** What memory a dedicated tmpfs may use: MemAvailable minus the margin kept for the system. */
function usableMemory(memory: Memory, options: SpaceOptions): number {
  const keep = memory.total * (options.keepFraction ?? 0.1) + (options.keepBytes ?? 64 * MIB);
  return Math.max(0, Math.floor(memory.available - keep));
}

interface MountEntry { mountPoint: string; fsType: string; source: string }

function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** The mount whose mount point is exactly `dir`, the last one if stacked. */
async function mountAt(dir: string, mountinfoPath = "/proc/self/mountinfo"): Promise<MountEntry | undefined> {
  const text = await readFile(mountinfoPath, "utf8");
  let found: MountEntry | undefined;
  for (const line of text.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const mountPoint = unescapeMount(left.split(" ")[4] ?? "");
    const [fsType = "", source = ""] = right.split(" ");
    if (mountPoint === dir) found = { mountPoint, fsType, source: unescapeMount(source) };
  }
  return found;
}

/** statfs of `dir`, or of its nearest existing parent when it does not exist yet. */
async function statNearest(dir: string): Promise<{ path: string; type: number; size: number; available: number }> {
  let path = dir;
  for (;;) {
    try {
      const s = await statfs(path);
      return { path, type: s.type, size: s.blocks * s.bsize, available: s.bavail * s.bsize };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT" || dirname(path) === path) throw error;
      path = dirname(path);
    }
  }
}

async function mountTmpfs(dir: string, size: number, remount: boolean): Promise<void> {
  const sizeOption = `size=${Math.floor(size / 4096) * 4096}`;
  const args = remount
    ? ["-o", `remount,${sizeOption}`, dir]
    : ["-t", "tmpfs", "-o", `${sizeOption},mode=0700,nosuid,nodev`, MOUNT_SOURCE, dir];
  try {
    await promisify(execFile)("mount", args);
  } catch (error) {
    const stderr = String((error as { stderr?: string }).stderr ?? (error as Error).message).trim();
    throw new Error(`cannot mount a ${formatBytes(size)} tmpfs on ${dir}: ${stderr}`);
  }
}

/** The most memory images may take in RAM: a size in bytes, or a share of MemTotal. */
export type MemoryLimit = { bytes: number } | { percent: number };

/** Half of RAM: what the kernel gives a tmpfs when no size is asked for. */
const DEFAULT_MEMORY_LIMIT: MemoryLimit = { percent: 50 };

/**
 * `--image-memory-max=`: what the generator's parseMemorySize() accepts (a size with an optional K, M,
 * G or T suffix, powers of 1024, or a percentage of RAM). Throws on anything else.
 *
 * @example parseMemoryLimit("1.5G") // { bytes: 1610612736 };  parseMemoryLimit("40%") // { percent: 40 }
 */
export function parseMemoryLimit(text: string): MemoryLimit {
  const parsed = parseMemorySize(text);
  if (!parsed.ok) throw new Error(`invalid memory limit '${text}': ${parsed.error}`);
  return parsed.value.endsWith("%") ? { percent: Number(parsed.value.slice(0, -1)) } : { bytes: Number(parsed.value) };
}

function limitBytes(limit: MemoryLimit, memory: Memory): number {
  return "bytes" in limit ? limit.bytes : Math.floor((memory.total * limit.percent) / 100);
}

function describeLimit(limit: MemoryLimit, bytes: number): string {
  return "bytes" in limit ? formatBytes(bytes) : `${formatBytes(bytes)} (${limit.percent}% of RAM)`;
}

/** What is known of the image's decoded size before it is written. */
export interface ImageSize {
  bytes: number;
  /** True when the decoded image is exactly `bytes` (Content-Length of an uncompressed image); false
   *  when it is only a lower bound (the first zstd frame's content size: a file may hold more frames). */
  exact: boolean;
}

/** Room a tmpfs needs besides the image's data pages: the provenance record and its temporary. */
const SLACK = 1024 * 1024;

/**
 * Makes sure an image of `size` (undefined: unknown) fits in `destDir`, mounting a dedicated tmpfs
 * there when destDir is in RAM and too small, or on a ramfs (which nothing bounds), and growing the
 * dedicated tmpfs an earlier pull mounted. In RAM, images never get more than the memory limit
 * (`options.memoryLimit`, default half of RAM) nor more than the memory available; a tmpfs mounted for
 * an image of exactly known size is no larger than that image. Call it with the folder's storage lock held.
 *
 * ```ts
 * await ensureSpace("/run/machines", { bytes: 3_300_000_000, exact: true });
 * // → { mountedTmpfs: true, available: 3_301_048_576 } or throws
 * //   "image needs 3.1 GiB, only 1.2 GiB of memory is available for /run/machines"
 * ```
 * A tmpfs is mounted only on an empty folder (created if missing) that is not already another mount
 * point; one we mounted earlier (source "netimport") is grown instead.
 */
export async function ensureSpace(destDir: string, size: ImageSize | undefined, options: SpaceOptions = {}): Promise<SpaceResult> {
  const dir = resolve(destDir);
  const fs = await statNearest(dir);
  const bytes = size?.bytes;
  const fits = bytes === undefined || bytes <= fs.available;
  if (fs.type !== TMPFS_MAGIC && fs.type !== RAMFS_MAGIC) {
    if (fits) return { mountedTmpfs: false, available: fs.available };
    throw new Error(`image needs ${formatBytes(bytes!)}, only ${formatBytes(fs.available)} is free on ${fs.path}`);
  }
  const memory = await readMemory(options.meminfoPath);
  const limit = options.memoryLimit ?? DEFAULT_MEMORY_LIMIT;
  const cap = limitBytes(limit, memory);
  const usable = Math.min(cap, usableMemory(memory, options));
  if (bytes !== undefined && bytes > cap) {
    throw new Error(`image needs ${formatBytes(bytes)}, more than the ${describeLimit(limit, cap)} images may take in memory (--image-memory-max)`);
  }
  if (bytes !== undefined && bytes > usable) throw noMemory(bytes, usable, dir);

  const existing = await mountAt(dir, options.mountinfoPath);
  if (existing?.source === MOUNT_SOURCE && existing.fsType === "tmpfs") {
    return growOwnTmpfs(dir, fs, size, cap, usable);
  }
  const ramfs = fs.type === RAMFS_MAGIC;
  // A ramfs reports nothing free: what it can take is the memory the limit leaves.
  const fitsHere = ramfs ? bytes !== undefined && bytes <= usable : fits;
  // Unknown size: a dedicated tmpfs is worth it when it could hold more than what is free here.
  const needDedicated = ramfs || (bytes === undefined ? fs.available < usable : !fits);
  if (!needDedicated) return { mountedTmpfs: false, available: fs.available };
  const refuse = (why: string): SpaceResult => {
    if (ramfs && bytes === undefined) {
      throw new Error(`${fs.path} is a ramfs, which no size bounds, and ${dir} ${why}, so no tmpfs limits the image of unknown size: refusing to fill RAM`);
    }
    if (fitsHere) return { mountedTmpfs: false, available: ramfs ? usable : fs.available };
    throw new Error(`image needs ${formatBytes(bytes!)}, only ${formatBytes(fs.available)} is free on ${fs.path}, and ${dir} ${why}, so no tmpfs is mounted on it`);
  };
  if (existing) return refuse(`is a ${existing.fsType} mount not made by netimport`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if ((await readdir(dir)).length) return refuse("is not empty");
  await mountTmpfs(dir, size?.exact ? size.bytes + SLACK : usable, false);
  return { mountedTmpfs: true, available: await availableIn(dir) };
}

/**
 * Our tmpfs from an earlier image: grown so that this image fits too. While another pull is still
 * writing into it (a `.#` temporary is there), what it has reserved but not yet used is not free: this
 * image's room is then added on top.
 */
async function growOwnTmpfs(dir: string, fs: { size: number; available: number }, size: ImageSize | undefined, cap: number, usable: number): Promise<SpaceResult> {
  const used = fs.size - fs.available;
  const othersWriting = (await readdir(dir)).some((name) => name.startsWith(".#"));
  let want: number;
  if (size === undefined || !size.exact) want = Math.max(fs.size, Math.min(cap, used + usable));
  else if (othersWriting) want = fs.size + size.bytes + SLACK;
  else want = Math.max(fs.size, used + size.bytes + SLACK);
  if (size?.exact && want > cap) {
    throw new Error(`image needs ${formatBytes(size.bytes)}, and with the ${formatBytes(used)} already in ${dir} that is more than the ${formatBytes(cap)} images may take in memory (--image-memory-max)`);
  }
  if (want - fs.size > usable) throw noMemory(size?.bytes ?? want - fs.size, usable, dir);
  if (want <= fs.size) return { mountedTmpfs: false, available: fs.available };
  await mountTmpfs(dir, want, true);
  return { mountedTmpfs: false, available: await availableIn(dir) };
}

/**
 * After a failed pull, with the folder's storage lock held: a netimport tmpfs on `dir` that holds
 * nothing any more is unmounted, so a failure gives its memory back. Returns true when it unmounted.
 */
export async function releaseEmptyTmpfs(dir: string, options: Pick<SpaceOptions, "mountinfoPath"> = {}): Promise<boolean> {
  const existing = await mountAt(resolve(dir), options.mountinfoPath);
  if (existing?.source !== MOUNT_SOURCE || existing.fsType !== "tmpfs") return false;
  if ((await readdir(dir)).length) return false;
  try {
    await promisify(execFile)("umount", [dir]);
    return true;
  } catch {
    return false; // busy (a process has it as its working folder): it holds nothing, leave it
  }
}

async function availableIn(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

function noMemory(bytes: number, usable: number, dir: string): Error {
  return new Error(`image needs ${formatBytes(bytes)}, only ${formatBytes(usable)} of memory is available for ${dir}`);
}

/**
 * Turns a write error into a message that says what happened: for ENOSPC, how big the file system is and
 * what is free; for EEXIST, that the destination exists. Other errors are returned unchanged.
 *
 * ```ts
 * sink.on("error", (e) => console.error(explainWriteError(e, "/run/machines/image.raw").message));
 * // "no space left on /run/machines (tmpfs of 1.2 GiB, 0 B free) after writing …"
 * ```
 */
export function explainWriteError(error: unknown, path: string, written?: number): Error {
  const err = error instanceof Error ? error : new Error(String(error));
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "EEXIST") return withCause(`${path} already exists`, err);
  if (code !== "ENOSPC" && code !== "EDQUOT") return err;
  const dir = dirname(path);
  let where = dir;
  try {
    // Synchronous on purpose: this runs on an error path, once.
    const { statfsSync } = process.getBuiltinModule("node:fs") as typeof import("node:fs");
    const s = statfsSync(dir);
    const kind = s.type === TMPFS_MAGIC ? "tmpfs" : s.type === RAMFS_MAGIC ? "ramfs" : "file system";
    where = `${dir} (${kind} of ${formatBytes(s.blocks * s.bsize)}, ${formatBytes(s.bavail * s.bsize)} free)`;
  } catch {
    // keep the bare folder name
  }
  const after = written === undefined ? "" : ` after writing ${formatBytes(written)}`;
  return withCause(`no space left on ${where}${after}: the image does not fit`, err);
}

function withCause(message: string, cause: Error): Error {
  const error = new Error(message, { cause }) as NodeJS.ErrnoException;
  error.code = (cause as NodeJS.ErrnoException).code;
  return error;
}
