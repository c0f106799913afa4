// The destination's life cycle: the image is written to a hidden temporary next to DEST, and only a
// complete, verified image is renamed into place, so nothing ever exists at DEST half-written.
// The ETag of the image in place is kept in a hidden sidecar for the next pull's If-None-Match.
import { randomBytes } from "node:crypto";
import { chmod, lstat, readFile, rename, rm, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** `.#NAME.1a2b3c4d` next to DEST. */
export function temporaryPath(dest: string): string {
  return join(dirname(dest), `.#${basename(dest)}.${randomBytes(4).toString("hex")}`);
}

/** `.NAME.netimport-etag` next to DEST. */
export function etagSidecarPath(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.netimport-etag`);
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(() => true, () => false);
}

/** The ETag stored when DEST was pulled, if DEST still exists. */
export async function readStoredEtag(dest: string): Promise<string | undefined> {
  if (!(await exists(dest))) return undefined;
  const text = await readFile(etagSidecarPath(dest), "utf8").catch(() => "");
  return text.trim() || undefined;
}

/** Remembers (or forgets, for undefined) the ETag of the image now at DEST. */
export async function storeEtag(dest: string, etag: string | undefined): Promise<void> {
  const sidecar = etagSidecarPath(dest);
  if (etag) await writeFile(sidecar, `${etag}\n`, { mode: 0o644 });
  else await unlink(sidecar).catch(() => undefined);
}

/** Removes a file or tree, even one made read-only. Never throws for a missing path. */
export async function removePath(path: string): Promise<void> {
  await chmod(path, 0o700).catch(() => undefined);
  await rm(path, { recursive: true, force: true });
}

/** `--ro`: takes away write permission from the image file, or from the root of the tree. */
export async function makeReadOnly(path: string): Promise<void> {
  const info = await lstat(path);
  await chmod(path, info.mode & 0o7555);
}

/**
 * Moves the finished image at `temp` to DEST. A file replaces a file atomically (rename(2)); a
 * tree that replaces a tree goes through a moment where DEST is absent, as rename(2) cannot swap
 * non-empty directories.
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
