// What netimport knows about an image it pulled: the URL it was asked for, where it was served from,
// the SHA-256 of the bytes as served, the validators, and the identity of the file or folder it wrote
// (inode, size, mtime). Kept, as systemd-pull keeps what it knows, in user xattrs on the image itself
// (`user.netimport`, and systemd-pull's `user.source_url` and `user.source_etag`); only where the file
// system refuses user xattrs (tmpfs before Linux 6.6, ramfs) or setfattr is missing, in a hidden sidecar
// `.NAME.netimport` next to DEST. The record is what lets a later pull
//   - tell an image it made from anything else at DEST (which it never replaces or deletes),
//   - notice that the image was changed since (size or mtime differ),
//   - reuse the image on `304 Not Modified` only when URL and hash still match what verification expects.
import { createHash } from "node:crypto";
import type { Stats } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { getXattr, setXattrs, XattrsUnsupported } from "./xattrs.ts";

export interface ImageRecord {
  /** The URL the pull was asked for, userinfo redacted. */
  url: string;
  /** The URL that served the image (the URL itself or a mirror, after redirects), userinfo redacted. */
  sourceUrl: string;
  /** SHA-256 of the image as served (before decoding), when the pull verified it (not with --verify=no). */
  sha256?: string;
  etag?: string;
  lastModified?: string;
  /** Identity of what was written: a record describes exactly one file or folder. */
  kind: "file" | "directory";
  ino: number;
  size: number;
  mtimeMs: number;
}

const NAME_MAX = 255;

/**
 * `.NAME.netimport` next to DEST; for a name too long for that, a hash of it stands in.
 *
 * @example recordPath("/run/machines/root.raw") // "/run/machines/.root.raw.netimport"
 */
export function recordPath(dest: string): string {
  const name = basename(dest);
  const plain = `.${name}.netimport`;
  if (Buffer.byteLength(plain) <= NAME_MAX) return join(dirname(dest), plain);
  return join(dirname(dest), `.${createHash("sha256").update(name).digest("hex").slice(0, 32)}.netimport`);
}

/** The identity fields of a record, from a stat of the image. */
export function identityOf(stat: Stats): Pick<ImageRecord, "kind" | "ino" | "size" | "mtimeMs"> {
  return { kind: stat.isDirectory() ? "directory" : "file", ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs };
}

function isRecord(value: unknown): value is ImageRecord {
  const r = value as Partial<ImageRecord> | null;
  return typeof r === "object" && r !== null && typeof r.url === "string" && typeof r.sourceUrl === "string"
    && (r.sha256 === undefined || typeof r.sha256 === "string") && (r.kind === "file" || r.kind === "directory")
    && typeof r.ino === "number" && typeof r.size === "number" && typeof r.mtimeMs === "number";
}

/** The records kept for DEST (none when there is no sidecar or it is unreadable). */
async function readRecords(dest: string): Promise<ImageRecord[]> {
  let text: string;
  try {
    text = await readFile(recordPath(dest), "utf8");
  } catch {
    return [];
  }
  try {
    const parsed = JSON.parse(text) as { images?: unknown };
    return Array.isArray(parsed.images) ? parsed.images.filter(isRecord) : [];
  } catch {
    return [];
  }
}

/**
 * Replaces the records of DEST atomically (written to `temporary`, then renamed over the sidecar).
 * While an image is being renamed into place the sidecar lists both the new and the old one, so an
 * interruption at any point leaves whatever is at DEST recognised as netimport's.
 */
export async function writeRecords(dest: string, records: ImageRecord[], temporary: string): Promise<void> {
  await writeFile(temporary, `${JSON.stringify({ images: records }, null, 1)}\n`, { mode: 0o644, flag: "wx" });
  try {
    await rename(temporary, recordPath(dest));
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** The record of the image now at DEST (matched by kind and inode), if netimport made it. */
function recordOf(records: ImageRecord[], stat: Stats): ImageRecord | undefined {
  const identity = identityOf(stat);
  return records.find((r) => r.kind === identity.kind && r.ino === identity.ino);
}

/** Whether the image at DEST is still as netimport left it (size and modification time). */
export function isUnchanged(record: ImageRecord, stat: Stats): boolean {
  return record.size === stat.size && record.mtimeMs === stat.mtimeMs;
}

/** The xattr holding netimport's record (JSON). */
const RECORD_XATTR = "user.netimport";

/**
 * The record of the image now at DEST, if netimport made it: from the image's own xattrs, else from the
 * sidecar (matched by kind and inode).
 */
export async function findRecord(dest: string, stat: Stats): Promise<ImageRecord | undefined> {
  const text = await getXattr(dest, RECORD_XATTR);
  if (text !== undefined) {
    try {
      const record: unknown = JSON.parse(text);
      if (isRecord(record) && recordOf([record], stat)) return record;
    } catch {
      // not ours after all: fall back to the sidecar
    }
  }
  return recordOf(await readRecords(dest), stat);
}

/** Where a record went: onto the image, or into the sidecar. */
export type RecordPlace = "xattrs" | "sidecar";

/**
 * Records the finished image at `temp` before it becomes DEST: as xattrs on it, which move with it, or,
 * where the file system refuses them, in the sidecar, which then also lists `previous` (the image
 * still at DEST) so that whatever DEST holds at any moment of the rename stays recognised.
 */
export async function recordImage(temp: string, dest: string, record: ImageRecord, previous: ImageRecord | undefined, sidecarTemporary: string): Promise<RecordPlace> {
  try {
    await setXattrs(temp, {
      "user.source_url": record.sourceUrl,
      ...(record.etag === undefined ? {} : { "user.source_etag": record.etag }),
      [RECORD_XATTR]: JSON.stringify(record),
    });
    return "xattrs";
  } catch (error) {
    if (!(error instanceof XattrsUnsupported)) throw error;
  }
  await writeRecords(dest, previous ? [record, previous] : [record], sidecarTemporary);
  return "sidecar";
}

/**
 * Once the image is DEST: a sidecar record is rewritten with the identity the image has now (a folder's
 * mtime may move when it is renamed); with xattrs, a sidecar left from an earlier pull goes away.
 */
export async function settleRecord(dest: string, place: RecordPlace, record: ImageRecord, placed: Stats, sidecarTemporary: string): Promise<void> {
  if (place === "xattrs") await rm(recordPath(dest), { force: true });
  else await writeRecords(dest, [{ ...record, ...identityOf(placed) }], sidecarTemporary);
}
