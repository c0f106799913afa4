// Room for the image where it is written. In the initrd that is /run (or /run/machines), a tmpfs that
// systemd mounts with size=20% of RAM (systemd issue #40994: a big image dies with ENOSPC at 20%). So
// when the image would not fit, or its size is unknown and /run is that small, a dedicated tmpfs is
// mounted on the destination folder, sized from MemAvailable minus a margin for the system.
import { execFile } from "node:child_process";
import { mkdir, readdir, readFile, statfs } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { promisify } from "node:util";

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;
/** The source name of the tmpfs we mount, so we recognise our own mount later. */
export const MOUNT_SOURCE = "netimport";
const MIB = 1024 * 1024;

export interface SpaceOptions {
  /** Replaces /proc/meminfo (tests). */
  meminfoPath?: string;
  /** Replaces /proc/self/mountinfo (tests). */
  mountinfoPath?: string;
  /** Memory left to the system: `keepFraction` of MemTotal plus `keepBytes` (default 10% + 64 MiB). */
  keepFraction?: number;
  keepBytes?: number;
}

export interface SpaceResult {
  /** True when this call mounted (or grew) the dedicated tmpfs on destDir. */
  mountedTmpfs: boolean;
  /** Bytes available for the image in destDir now. */
  available: number;
}

/** "3.1 GiB", "512 MiB", "4.0 KiB", "12 B". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
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
async function usableMemory(options: SpaceOptions): Promise<number> {
  const memory = await readMemory(options.meminfoPath);
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

/**
 * Makes sure `bytes` (the decoded image size, if known) fit in `destDir`, mounting a dedicated tmpfs
 * there when destDir is on a tmpfs/ramfs that is too small.
 *
 * ```ts
 * await ensureSpace("/run/machines", 3_300_000_000);
 * // → { mountedTmpfs: true, available: 21_000_000_000 } or throws
 * //   "image needs 3.1 GiB, only 1.2 GiB of memory is available for /run/machines"
 * ```
 * A tmpfs is mounted only on an empty folder (created if missing) that is not already another mount
 * point; one we mounted earlier (source "netimport") is grown instead.
 */
export async function ensureSpace(destDir: string, bytes: number | undefined, options: SpaceOptions = {}): Promise<SpaceResult> {
  const dir = resolve(destDir);
  const fs = await statNearest(dir);
  const inRam = fs.type === TMPFS_MAGIC || fs.type === RAMFS_MAGIC;
  const fits = bytes === undefined || bytes <= fs.available;
  if (!inRam) {
    if (fits) return { mountedTmpfs: false, available: fs.available };
    throw new Error(`image needs ${formatBytes(bytes!)}, only ${formatBytes(fs.available)} is free on ${fs.path}`);
  }
  const usable = await usableMemory(options);
  if (fs.type === RAMFS_MAGIC) {
    // ramfs has no size limit: only memory counts.
    if (bytes !== undefined && bytes > usable) throw noMemory(bytes, usable, dir);
    return { mountedTmpfs: false, available: usable };
  }
  const existing = await mountAt(dir, options.mountinfoPath);
  if (existing?.source === MOUNT_SOURCE && existing.fsType === "tmpfs") {
    // Ours from an earlier image: grow it if needed. Its used pages are no longer in MemAvailable.
    if (bytes === undefined || fits) return { mountedTmpfs: false, available: fs.available };
    if (bytes > usable) throw noMemory(bytes, usable, dir);
    await mountTmpfs(dir, fs.size - fs.available + usable, true);
    return { mountedTmpfs: true, available: await availableIn(dir) };
  }
  // Unknown size: a dedicated tmpfs is worth it when it could hold more than the current one.
  const needDedicated = bytes === undefined ? fs.size < usable : !fits;
  if (!needDedicated) return { mountedTmpfs: false, available: fs.available };
  if (bytes !== undefined && bytes > usable) throw noMemory(bytes, usable, dir);
  const refuse = (why: string) => {
    if (fits) return { mountedTmpfs: false, available: fs.available };
    throw new Error(`image needs ${formatBytes(bytes!)}, only ${formatBytes(fs.available)} is free on ${fs.path}, and ${dir} ${why}, so no tmpfs is mounted on it`);
  };
  if (existing) return refuse(`is a ${existing.fsType} mount not made by netimport`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if ((await readdir(dir)).length) return refuse("is not empty");
  await mountTmpfs(dir, usable, false);
  return { mountedTmpfs: true, available: await availableIn(dir) };
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

/** True for the errors explainWriteError describes as "no space left". */
export function isNoSpaceError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOSPC" || code === "EDQUOT" || (error instanceof Error && error.cause !== undefined && isNoSpaceError(error.cause));
}

function withCause(message: string, cause: Error): Error {
  const error = new Error(message, { cause }) as NodeJS.ErrnoException;
  error.code = (cause as NodeJS.ErrnoException).code;
  return error;
}
