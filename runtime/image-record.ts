// What netimport knows about an image it pulled: the URL it was asked for, where it was served from,
// the SHA-256 of the bytes as served, the validators, and the identity of the file or folder it wrote
// (inode, size, mtime). Kept in a hidden sidecar `.NAME.netimport` next to DEST, because Node cannot set
// extended attributes. The record is what lets a later pull
//   - tell an image it made from anything else at DEST (which it never replaces or deletes),
//   - notice that the image was changed since (size or mtime differ),
//   - reuse the image on `304 Not Modified` only when URL and hash still match what verification expects.
import { createHash } from "node:crypto";
import type { Stats } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export interface ImageRecord {
  /** The URL the pull was asked for, userinfo redacted. */
  url: string;
  /** The URL that served the image (the URL itself or a mirror, after redirects), userinfo redacted. */
  sourceUrl: string;
  /** SHA-256 of the image as served (before decoding). */
  sha256: string;
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
    && typeof r.sha256 === "string" && (r.kind === "file" || r.kind === "directory")
    && typeof r.ino === "number" && typeof r.size === "number" && typeof r.mtimeMs === "number";
}

/** The records kept for DEST (none when there is no sidecar or it is unreadable). */
export async function readRecords(dest: string): Promise<ImageRecord[]> {
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
export function recordOf(records: ImageRecord[], stat: Stats): ImageRecord | undefined {
  const identity = identityOf(stat);
  return records.find((r) => r.kind === identity.kind && r.ino === identity.ino);
}

/** Whether the image at DEST is still as netimport left it (size and modification time). */
export function isUnchanged(record: ImageRecord, stat: Stats): boolean {
  return record.size === stat.size && record.mtimeMs === stat.mtimeMs;
}
