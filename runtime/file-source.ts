// `file://` URLs, which systemd-pull accepts too: the same shape as the HTTP source, read from disk.
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { OpenedSource } from "./http-source.ts";

/**
 * Opens a `file://` URL as a source.
 *
 * @example const source = await openFileSource("file:///srv/images/os.raw.zst");
 */
export async function openFileSource(url: string): Promise<OpenedSource> {
  const path = fileURLToPath(url);
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    throw new Error(`cannot open ${url}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  if (!info.isFile()) throw new Error(`cannot open ${url}: not a regular file`);
  return {
    notModified: false,
    body: createReadStream(path, { highWaterMark: 1 << 20 }),
    url,
    size: info.size,
    etag: undefined,
    lastModified: info.mtime.toUTCString(),
  };
}

/** A small `file://` file, or undefined when it does not exist. */
export async function readSmallFile(url: string): Promise<{ data: Buffer; url: string } | undefined> {
  try {
    return { data: await readFile(fileURLToPath(url)), url };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`cannot read ${url}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}
