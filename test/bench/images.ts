// The benchmark's cached images in .cache/bench/images/: a disk-like raw image per size and its
// compressed variants, made with the native compressors at their usual settings. Built once, reused.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, openSync, closeSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { writeDiskImage } from "./disk-image.ts";

export const FORMATS = ["raw", "gz", "zst", "xz", "bz2"] as const;
export type Format = (typeof FORMATS)[number];

/** The compressor command for each format, at the settings image builders commonly use. */
const COMPRESSORS: Record<Exclude<Format, "raw">, string[]> = {
  gz: ["gzip", "-6", "-n", "-c"],
  zst: ["zstd", "-3", "-q", "-T1", "-c"],
  xz: ["xz", "-6", "-T1", "-c"],
  bz2: ["bzip2", "-9", "-c"],
};

// Bump when the image content or the compressor settings change, so stale caches are not reused.
const IMAGE_VERSION = 1;

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export function imageName(size: number): string {
  const label = size >= GiB ? `${size / GiB}g` : `${size / MiB}m`;
  return `disk-${label}-v${IMAGE_VERSION}`;
}

/** File name as served: `disk-1g-v1.raw`, `disk-1g-v1.raw.zst`, … */
export function imageFile(size: number, format: Format): string {
  return format === "raw" ? `${imageName(size)}.raw` : `${imageName(size)}.raw.${format}`;
}

function compress(format: Exclude<Format, "raw">, source: string, target: string): Promise<void> {
  const [command, ...args] = COMPRESSORS[format];
  const input = openSync(source, "r");
  const output = openSync(`${target}.partial`, "w");
  return new Promise<void>((resolve, reject) => {
    // Niced: other work shares this machine's two cores.
    const child = spawn("nice", ["-n", "10", command!, ...args], { stdio: [input, output, "inherit"] });
    child.on("error", reject);
    child.on("close", (code) => {
      closeSync(input);
      closeSync(output);
      if (code === 0) {
        renameSync(`${target}.partial`, target);
        resolve();
      } else reject(new Error(`${command} exited with ${code} compressing ${source}`));
    });
  });
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Runs the tasks at most `limit` at a time. */
async function inParallel(tasks: (() => Promise<void>)[], limit: number): Promise<void> {
  const queue = [...tasks];
  await Promise.all(Array.from({ length: limit }, async () => {
    for (let task = queue.shift(); task; task = queue.shift()) await task();
  }));
}

export type ImageSet = {
  dir: string;
  /** Every image file wanted, raw and compressed. */
  files: string[];
  /** sha256 of the raw image, to check what a tool wrote. */
  sha256: Map<number, string>;
  /** sha256 of each file as served (the compressed bytes), by file name: what `--verify=` checks. */
  served: Map<string, string>;
};

/** The name of the checksum file written next to the images, as systemd-pull's `--verify=checksum` expects it. */
export const CHECKSUM_FILE = "SHA256SUMS";

/**
 * A SHA256SUMS file in the format of `sha256sum` (and what systemd-pull reads): `<hex>  <name>` per line.
 * @example checksumFile(new Map([["os.raw", "ab…"]])) // "ab…  os.raw\n"
 */
export function checksumFile(hashes: ReadonlyMap<string, string>): string {
  return [...hashes].map(([name, hash]) => `${hash}  ${name}\n`).join("");
}

/** The sha256 of `path`, cached in `path.sha256sum` (the images never change under the same name). */
async function cachedSha256(path: string): Promise<string> {
  const sumFile = `${path}.sha256sum`;
  if (!existsSync(sumFile)) writeFileSync(sumFile, `${await sha256File(path)}\n`);
  return readFileSync(sumFile, "utf8").trim();
}

/**
 * Makes sure every (size, format) image exists in `dir`, building what is missing.
 * @example const images = await ensureImages(".cache/bench/images", [[GiB, ["raw", "zst"]]]);
 */
export async function ensureImages(dir: string, wanted: [number, readonly Format[]][], log: (line: string) => void): Promise<ImageSet> {
  mkdirSync(dir, { recursive: true });
  const sha256 = new Map<number, string>();
  const files: string[] = [];
  const tasks: (() => Promise<void>)[] = [];
  for (const [size, formats] of wanted) {
    const raw = join(dir, imageFile(size, "raw"));
    if (!existsSync(raw)) {
      log(`images: writing ${imageFile(size, "raw")}`);
      writeDiskImage(raw, size);
    }
    sha256.set(size, await cachedSha256(raw));
    files.push(raw);
    for (const format of formats) {
      if (format === "raw") continue;
      const target = join(dir, imageFile(size, format));
      files.push(target);
      if (existsSync(target)) continue;
      tasks.push(async () => {
        const started = performance.now();
        await compress(format, raw, target);
        log(`images: compressed ${imageFile(size, format)} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
      });
    }
  }
  if (tasks.length) log(`images: compressing ${tasks.length} image(s), two at a time (once; cached afterwards)`);
  await inParallel(tasks, 2);
  const served = new Map<string, string>();
  for (const file of files) served.set(basename(file), await cachedSha256(file));
  writeFileSync(join(dir, CHECKSUM_FILE), checksumFile(served));
  return { dir, files, sha256, served };
}
