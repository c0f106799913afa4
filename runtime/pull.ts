// `netimport pull`, composed:
//   lock DEST → remove a killed pull's temporaries → look at what DEST holds (only netimport's own
//   images are ever replaced) → settle the expected hash (small files first) → request the image
//   (conditionally, when DEST may be reused) → peek at its first bytes → plan the pull once (who
//   decodes, whether to hash, what writes: pull-plan.ts) → make room and the hidden temporary →
//   stream into it as planned
//     source → served bytes (counted; hashed when verifying) → decoder → sparse file | GNU tar
//     source → served bytes (counted; hashed when verifying) → zstd/xz writing the file itself
//   → verify → record → rename into place.
// Any failure removes the temporary (and a tmpfs mounted for it that holds nothing else); DEST only
// ever holds a complete, verified image of the requested URL. A transfer that cannot resume where it
// stopped (no validator, the file changed, Range ignored) starts again from byte 0, within the retries.
import { constants } from "node:fs";
import { lstat, mkdir, open, stat, utimes } from "node:fs/promises";
import { dirname } from "node:path";
import { pipeline } from "node:stream/promises";
import type { ImageType } from "../generator/import-request.ts";
import { redactUrl } from "../generator/redact.ts";
import { detectCompression, type Compression } from "./decoder.ts";
import { lockDestination, lockFolderStorage } from "./dest-lock.ts";
import { findTemporaries, inspectDestination, makeReadOnly, moveIntoPlace, removePath, temporaryPath, type ExistingImage } from "./destination.ts";
import type { DnsPaths } from "./dns-fallback.ts";
import { openFileSource, readSmallFile } from "./file-source.ts";
import { createHttpClient } from "./http-client.ts";
import { fetchSmallFile, openHttpSource, RestartFromZero, type ConditionalRequest, type OpenedSource, type TransferOptions } from "./http-source.ts";
import { identityOf, recordImage, settleRecord, type ImageRecord } from "./image-record.ts";
import { peekHead } from "./peek-head.ts";
import { createProgressMeter } from "./progress.ts";
import { ensureSpace, releaseEmptyTmpfs, type ImageSize, type MemoryLimit } from "./ram-space.ts";
import { describePlan, imageStages, planPull } from "./pull-plan.ts";
import { createServedBytes } from "./served-bytes.ts";
import type { GnuTar } from "./tar-unpack-sink.ts";
import { zstdFrameContentSize } from "./zstd-frames.ts";
import { checkImageHash, expectImageHash, type Expectation, type SmallFileFetcher, type VerifyMode } from "./verify.ts";

export interface PullOptions {
  url: string;
  dest: string;
  type: ImageType;
  verify: VerifyMode;
  keyring?: string;
  /** Keyring candidates when `keyring` is not given (default: systemd's paths). */
  defaultKeyrings?: readonly string[];
  mirrors?: readonly string[];
  caFile?: string;
  /** Proxies for http:// and https:// requests (each request by its own URL's scheme). */
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
  idleTimeoutSeconds?: number;
  retries?: number;
  /** Backoff base of the retries, in seconds (default 1; capped at 30 s). */
  retryDelaySeconds?: number;
  progressIntervalSeconds?: number;
  readOnly?: boolean;
  /** The most memory images may take when DEST is in RAM (default half of RAM). */
  memoryLimit?: MemoryLimit;
  signal?: AbortSignal;
  /** Informational lines (progress, retries); default stdout. */
  info?: (line: string) => void;
  dnsPaths?: DnsPaths;
  /** Which decoders: "auto" (default) uses the system's zstd/xz/bzip2 when installed, "js" never spawns one. */
  decoders?: "auto" | "js";
  /** Replaces /proc/meminfo (tests). */
  meminfoPath?: string;
}

export type PullResult =
  /** `sha256` of the bytes as served, when verification hashed them (not with --verify=no). */
  | { status: "pulled"; url: string; bytes: number; sha256?: string }
  | { status: "up-to-date"; url: string };

/**
 * Pulls the image at `url` into `dest`.
 *
 * @example
 * await pull({ url: "https://o/os.raw.zst", dest: "/run/machines/os.raw", type: "raw", verify: { kind: "checksum" } });
 */
export async function pull(options: PullOptions): Promise<PullResult> {
  const info = options.info ?? ((line: string) => process.stdout.write(`${line}\n`));
  // Found before anything is downloaded; loaded only for tar images: raw pulls never evaluate the tar code.
  const tar = options.type === "tar" ? (await import("./tar-unpack-sink.ts")).requireGnuTar() : undefined;
  await mkdir(dirname(options.dest), { recursive: true });
  const lock = await lockDestination(options.dest);
  try {
    for (const leftover of await findTemporaries(options.dest)) {
      info(`removing ${leftover}, left behind by an interrupted pull`);
      await removePath(leftover);
    }
    const existing = await inspectDestination(options.dest, options.type === "raw" ? "file" : "directory");
    return await pullLocked(options, existing, tar, info);
  } finally {
    await lock.release();
  }
}

async function pullLocked(options: PullOptions, existing: ExistingImage, tar: GnuTar | undefined, info: (line: string) => void): Promise<PullResult> {
  const idleTimeoutMs = (options.idleTimeoutSeconds ?? 30) * 1000;
  const client = createHttpClient({
    idleTimeoutMs, caFile: options.caFile, httpProxy: options.httpProxy, httpsProxy: options.httpsProxy,
    noProxy: options.noProxy, dnsPaths: options.dnsPaths,
  });
  const retryBaseMs = (options.retryDelaySeconds ?? 1) * 1000;
  const retries = options.retries ?? 5;
  const transfer: TransferOptions = {
    client,
    mirrors: options.mirrors,
    idleTimeoutMs,
    retries,
    backoff: { baseMs: retryBaseMs, capMs: Math.max(retryBaseMs, 30000) },
    signal: options.signal,
    onRetry: ({ url, error, delayMs, restart }) => info(
      restart ? `${error.message}; starting ${redactUrl(url)} again from byte 0`
      : delayMs === undefined ? `${error.message}; trying the next URL`
      : `${error.message}; retrying ${redactUrl(url)} in ${(delayMs / 1000).toFixed(1)} s`,
    ),
  };
  const isFile = options.url.startsWith("file:");
  if (options.url.startsWith("https:")) {
    for (const mirror of options.mirrors ?? []) {
      if (mirror.startsWith("http:")) info(`mirror ${redactUrl(mirror)} is plain http while ${redactUrl(options.url)} is https: only verification protects the image from what it serves`);
    }
  }
  const fetchSmall: SmallFileFetcher = (url) => (isFile ? readSmallFile(url) : fetchSmallFile(url, transfer));
  try {
    const expected = await expectImageHash(options.verify, options.url, {
      fetch: fetchSmall, keyring: options.keyring, defaultKeyrings: options.defaultKeyrings,
    });
    let ifNoneMatch = isFile ? undefined : reusableEtag(existing, options.url, expected, info);
    for (let restarts = 0; ; restarts++) {
      const source: OpenedSource = isFile
        ? await openFileSource(options.url)
        : await openHttpSource(options.url, { ...transfer, ifNoneMatch });
      if (source.notModified) {
        if (options.readOnly && existing.state === "ours") await makeReadOnly(options.dest);
        return { status: "up-to-date", url: source.url };
      }
      ifNoneMatch = undefined;
      try {
        return await writeImage(options, source, expected, existing, tar, info);
      } catch (error) {
        if (!(error instanceof RestartFromZero) || restarts >= retries) throw error;
        info(`${error.message}; starting again from byte 0 (${restarts + 1} of ${retries})`);
      }
    }
  } finally {
    await client.close();
  }
}

/**
 * The ETag for `If-None-Match`, only when a `304 Not Modified` could keep DEST: DEST is netimport's own
 * image of this very URL, unchanged since it was written, and its recorded SHA-256 is the one
 * verification expects now (a pinned hash, or the checksum file just fetched).
 */
function reusableEtag(existing: ExistingImage, url: string, expected: Expectation | undefined, info: (line: string) => void): ConditionalRequest | undefined {
  if (existing.state !== "ours") return undefined;
  const { record } = existing;
  const reason = !existing.unchanged ? "it was changed since it was pulled"
    : record.url !== redactUrl(url) ? `it was pulled from ${record.url}`
    : expected && record.sha256 === undefined ? `it was pulled without verification, so its SHA-256 is unknown`
    : expected && record.sha256 !== expected.hash ? `its SHA-256 is not the one ${expected.source} expects now`
    : record.etag === undefined ? "its server sent no ETag"
    : undefined;
  if (reason) {
    info(`downloading ${redactUrl(url)} again in full: the image at DEST cannot be kept, as ${reason}`);
    return undefined;
  }
  return { url: record.sourceUrl, etag: record.etag! };
}

/** Streams one response into a new temporary, verifies, records and renames it into place. */
async function writeImage(options: PullOptions, source: Extract<OpenedSource, { notModified: false }>, expected: Expectation | undefined, existing: ExistingImage, tar: GnuTar | undefined, info: (line: string) => void): Promise<PullResult> {
  const dir = dirname(options.dest);
  let temp: string | undefined;
  try {
    const { head, stream: body } = await peekHead(source.body);
    // Until the pipeline takes the body, its failure (a cut it cannot resume from, say) must not be an
    // uncaught 'error' event: the pipeline finds the stream errored and rejects with that error.
    body.on("error", () => {});
    const plan = planPull({ type: options.type, compression: detectCompression(head), hash: expected !== undefined, decoders: options.decoders ?? "auto", tar });
    info(`${redactUrl(source.url)}: ${describePlan(plan)}`);
    temp = await makeTemporary(options, sizeOf(plan.compression, head, source.size));
    const served = createServedBytes({
      hash: plan.hash,
      check: expected && ((sha256) => checkImageHash(sha256, expected, source.url)),
      progress: createProgressMeter({ total: source.size, intervalSeconds: options.progressIntervalSeconds, url: () => redactUrl(source.url), write: info }),
    });
    await pipeline([body, served, ...(await imageStages(plan, temp))], { signal: options.signal });
    await finishImage(options, temp, existing, { sha256: served.sha256, source });
    return { status: "pulled", url: source.url, bytes: served.bytes, ...(served.sha256 === undefined ? {} : { sha256: served.sha256 }) };
  } catch (error) {
    // Failing before the pipeline took the body (no room, say): stop the transfer here.
    source.body.destroy();
    if (temp !== undefined) await discardTemporary(dir, temp, info);
    throw options.signal?.aborted ? options.signal.reason : error;
  }
}

/** What the image's first bytes and the response say of its decoded size. */
function sizeOf(compression: Compression, head: Buffer, served: number | undefined): ImageSize | undefined {
  if (compression === "none") return served === undefined ? undefined : { bytes: served, exact: true };
  const first = compression === "zstd" ? zstdFrameContentSize(head) : undefined;
  return first === undefined ? undefined : { bytes: first, exact: false };
}

/**
 * Makes room for the image and creates its hidden temporary (an empty file, or folder for tar), both
 * under the folder's storage lock: another pull deciding about the same folder's tmpfs then sees it.
 */
async function makeTemporary(options: PullOptions, size: ImageSize | undefined): Promise<string> {
  const dir = dirname(options.dest);
  const lock = await lockFolderStorage(dir, options.signal);
  try {
    await ensureSpace(dir, size, { memoryLimit: options.memoryLimit, meminfoPath: options.meminfoPath });
    const temp = temporaryPath(options.dest);
    if (options.type === "raw") await (await open(temp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644)).close();
    else await mkdir(temp, { mode: 0o755 });
    return temp;
  } finally {
    await lock.release();
  }
}

/** Removes a failed pull's temporary, and the tmpfs netimport mounted for it if nothing else is in it. */
async function discardTemporary(dir: string, temp: string, info: (line: string) => void): Promise<void> {
  const lock = await lockFolderStorage(dir);
  try {
    await removePath(temp);
    if (await releaseEmptyTmpfs(dir)) info(`unmounted the tmpfs netimport had mounted on ${dir}`);
  } catch (error) {
    // The failure that brought us here is what the caller reports; this one is worth a line.
    info(`cannot clean up ${temp}: ${(error as Error).message}`);
  } finally {
    await lock.release();
  }
}

/**
 * The verified image becomes DEST: read-only if asked, its mtime the server's Last-Modified (as
 * systemd-pull sets it), its record written (image-record.ts), then renamed into place.
 */
async function finishImage(options: PullOptions, temp: string, existing: ExistingImage, what: { sha256: string | undefined; source: Extract<OpenedSource, { notModified: false }> }): Promise<void> {
  const { source } = what;
  const modified = source.lastModified === undefined ? undefined : new Date(source.lastModified);
  if (options.type === "raw" && modified && !Number.isNaN(modified.getTime())) await utimes(temp, modified, modified);
  if (options.readOnly) await makeReadOnly(temp);
  const record: ImageRecord = {
    url: redactUrl(options.url),
    sourceUrl: redactUrl(source.url),
    ...(what.sha256 === undefined ? {} : { sha256: what.sha256 }),
    ...(source.etag === undefined ? {} : { etag: source.etag }),
    ...(source.lastModified === undefined ? {} : { lastModified: source.lastModified }),
    ...identityOf(await lstat(temp)),
  };
  const place = await recordImage(temp, options.dest, record, existing.state === "ours" ? existing.record : undefined, temporaryPath(options.dest));
  await moveIntoPlace(temp, options.dest);
  await settleRecord(options.dest, place, record, await stat(options.dest), temporaryPath(options.dest));
}
