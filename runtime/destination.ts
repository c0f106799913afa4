// The destination's life cycle: the image is written to a hidden temporary next to DEST, and only a
// complete, verified image is renamed into place, so nothing ever exists at DEST half-written. What is
// at DEST already is replaced only when netimport made it (its record says so, image-record.ts): never
// a symlink, a file or folder of someone else's, nor one of the wrong kind. Temporaries left by a
// killed pull are recognised by their name and removed by the next pull of the same DEST.
import { randomBytes, createHash } from "node:crypto";
import type { Stats } from "node:fs";
import { constants } from "node:fs";
import { chmod, lstat, open, readdir, rename, rm, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { findRecord, isUnchanged, recordPath, type ImageRecord } from "./image-record.ts";

const NAME_MAX = 255;
/** `.#` + name + `.` + 8 hex digits + `.old`: the longest temporary name, which must fit in NAME_MAX. */
const TEMPORARY_OVERHEAD = 2 + 1 + 8 + 4;

/**
 * The part of DEST's name its temporaries carry: the name itself, or, when that would make a
 * temporary's name too long, its first bytes and a hash of the whole (so two long names that share
 * a beginning still get different temporaries).
 */
function temporaryStem(dest: string): string {
  const name = basename(dest);
  const room = NAME_MAX - TEMPORARY_OVERHEAD;
  if (Buffer.byteLength(name) <= room) return name;
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 16);
  let prefix = Buffer.from(name).subarray(0, room - hash.length - 1).toString("utf8");
  prefix = prefix.replace(/\uFFFD+$/, ""); // a multi-byte character cut in two
  return `${prefix}~${hash}`;
}

/**
 * `.#NAME.1a2b3c4d` next to DEST (NAME shortened when needed to keep within 255 bytes).
 *
 * @example temporaryPath("/run/machines/os.raw") // "/run/machines/.#os.raw.1a2b3c4d"
 */
export function temporaryPath(dest: string): string {
  return join(dirname(dest), `.#${temporaryStem(dest)}.${randomBytes(4).toString("hex")}`);
}

/** The temporaries of DEST in its folder: what temporaryPath() makes, and their `.old` twins. */
export async function findTemporaries(dest: string): Promise<string[]> {
  const prefix = `.#${temporaryStem(dest)}.`;
  const names = await readdir(dirname(dest)).catch(() => [] as string[]);
  return names
    .filter((name) => name.startsWith(prefix) && /^[0-9a-f]{8}(\.old)?$/.test(name.slice(prefix.length)))
    .map((name) => join(dirname(dest), name));
}

/**
 * Opens the file an image is written to: a new one, or the empty temporary the pull created for it
 * (exclusively, under the folder's storage lock). Never through a symlink, never over data: a file
 * that is not empty fails with EEXIST ("… already exists").
 */
export async function openImageFile(path: string, mode = 0o644): Promise<FileHandle> {
  const handle = await open(path, constants.O_CREAT | constants.O_WRONLY | constants.O_NOFOLLOW, mode);
  const info = await handle.stat();
  if (!info.isFile() || info.size > 0) {
    await handle.close();
    throw Object.assign(new Error(`EEXIST: ${path} already exists`), { code: "EEXIST" });
  }
  return handle;
}

/** What is at DEST now, and whether a pull may replace it. */
export type ExistingImage =
  | { state: "absent" }
  | { state: "ours"; record: ImageRecord; stat: Stats; unchanged: boolean };

/** DEST holds something netimport must not replace. */
class ForeignDestinationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ForeignDestinationError";
  }
}

/**
 * Looks at DEST before a pull: absent, or an image netimport made (with its record, and whether it was
 * changed since). Anything else throws ForeignDestinationError: the pull must not touch it.
 */
export async function inspectDestination(dest: string, kind: "file" | "directory"): Promise<ExistingImage> {
  let stat: Stats;
  try {
    stat = await lstat(dest);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { state: "absent" };
    throw error;
  }
  const refuse = (what: string) =>
    new ForeignDestinationError(`${dest} ${what}: netimport only replaces images it pulled itself; remove it, or choose another destination`);
  if (stat.isSymbolicLink()) throw refuse("is a symbolic link");
  const isKind = kind === "file" ? stat.isFile() : stat.isDirectory();
  if (!isKind) throw refuse(`exists and is not a ${kind === "file" ? "regular file" : "folder"}`);
  const record = await findRecord(dest, stat);
  if (!record) throw refuse(`exists and was not made by netimport (no record of it in its xattrs or in ${recordPath(dest)})`);
  return { state: "ours", record, stat, unchanged: isUnchanged(record, stat) };
}

/**
 * Removes a file or tree netimport made, even one made read-only. Never follows a symlink (a symlink
 * itself is removed, its target left alone), never throws for a missing path.
 */
export async function removePath(path: string): Promise<void> {
  const stat = await lstat(path).catch(() => undefined);
  if (!stat) return;
  if (stat.isDirectory()) await chmod(path, 0o700).catch(() => undefined); // a --ro tree, removed by a non-root user
  await rm(path, { recursive: true, force: true });
}

/** `--ro`: takes away write permission from the image file, or from the root of the tree. */
export async function makeReadOnly(path: string): Promise<void> {
  const info = await lstat(path);
  if (info.isSymbolicLink()) throw new Error(`${path} is a symbolic link`);
  await chmod(path, info.mode & 0o7555);
}

/**
 * Moves the finished image at `temp` to DEST, which is absent or an image of netimport's of the same
 * kind (inspectDestination() said so). A file replaces a file atomically (rename(2)); a tree that
 * replaces a tree goes through a moment where DEST is absent, as rename(2) cannot swap non-empty folders.
 */
export async function moveIntoPlace(temp: string, dest: string): Promise<void> {
  const [from, to] = await Promise.all([lstat(temp), lstat(dest).catch(() => undefined)]);
  if (!to || (from.isFile() && to.isFile())) {
    await rename(temp, dest);
    return;
  }
  const old = `${temporaryPath(dest)}.old`;
  await rename(dest, old);
  try {
    await rename(temp, dest);
  } catch (error) {
    await rename(old, dest).catch(() => undefined);
    throw error;
  }
  await removePath(old);
}
