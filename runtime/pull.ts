// `netimport pull`, composed: settle the expected hash (small files first), then
//   source → hash tee → progress → decoder → sink (sparse file | tar unpack) into a hidden temporary
//   (for zstd and xz with the system's binary at hand: source → hash tee → progress → binary → file),
// then verify → rename into place. Any failure removes the temporary; DEST only ever holds a
// complete, verified image.
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { pipeline } from "node:stream/promises";
import { createDecoder, detectCompression, sparseFileDecoder, type Compression } from "./decoder.ts";
import { createDeferredSink, type SinkStages } from "./deferred-sink.ts";
import { makeReadOnly, moveIntoPlace, readStoredEtag, removePath, storeEtag, temporaryPath } from "./destination.ts";
import type { DnsPaths } from "./dns-fallback.ts";
import { openFileSource, readSmallFile } from "./file-source.ts";
import { createHashTee } from "./hash-tee.ts";
import { createDispatcher } from "./http-dispatcher.ts";
import { fetchSmallFile, openHttpSource, type OpenedSource, type TransferOptions } from "./http-source.ts";
import type { ImageType } from "../generator/import-request.ts";
import { createNativeFileDecoder } from "./native-file-decoder.ts";
import { createProgressMeter } from "./progress.ts";
import { ensureSpace } from "./ram-space.ts";
import { createSparseFileSink } from "./sparse-file-sink.ts";
import { zstdFrameContentSize } from "./zstd-frames.ts";
import { checkImageHash, expectImageHash, type SmallFileFetcher, type VerifyMode } from "./verify.ts";

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
  proxy?: string;
  noProxy?: string;
  idleTimeoutSeconds?: number;
  retries?: number;
  /** Backoff base of the retries, in seconds (default 1; capped at 30 s). */
  retryDelaySeconds?: number;
  progressIntervalSeconds?: number;
  readOnly?: boolean;
  signal?: AbortSignal;
  /** Informational lines (progress, retries); default stdout. */
  info?: (line: string) => void;
  dnsPaths?: DnsPaths;
  /** Which decoders: "auto" (default) uses the system's zstd/xz/bzip2 when installed, "js" never spawns one. */
  decoders?: "auto" | "js";
}

export type PullResult =
  | { status: "pulled"; url: string; bytes: number; sha256: string }
  | { status: "up-to-date"; url: string };

/**
 * Pulls the image at `url` into `dest`.
 *
 * @example
 * await pull({ url: "https://o/os.raw.zst", dest: "/run/machines/os.raw", type: "raw", verify: { kind: "checksum" } });
 */
export async function pull(options: PullOptions): Promise<PullResult> {
  const info = options.info ?? ((line: string) => process.stdout.write(`${line}\n`));
  const idleTimeoutMs = (options.idleTimeoutSeconds ?? 30) * 1000;
  const dispatcher = createDispatcher({
    idleTimeoutMs, caFile: options.caFile, proxy: options.proxy, noProxy: options.noProxy, dnsPaths: options.dnsPaths,
  });
  const retryBaseMs = (options.retryDelaySeconds ?? 1) * 1000;
  const transfer: TransferOptions = {
    dispatcher,
    mirrors: options.mirrors,
    idleTimeoutMs,
    retries: options.retries,
    backoff: { baseMs: retryBaseMs, capMs: Math.max(retryBaseMs, 30000) },
    signal: options.signal,
    onRetry: ({ url, error, delayMs }) =>
      info(delayMs === undefined ? `${error.message}; trying the next URL` : `${error.message}; retrying ${url} in ${(delayMs / 1000).toFixed(1)} s`),
  };
  const isFile = options.url.startsWith("file:");
  const fetchSmall: SmallFileFetcher = (url) => (isFile ? readSmallFile(url) : fetchSmallFile(url, transfer));
  try {
    const expected = await expectImageHash(options.verify, options.url, {
      fetch: fetchSmall, keyring: options.keyring, defaultKeyrings: options.defaultKeyrings,
    });
    const previousEtag = isFile ? undefined : await readStoredEtag(options.dest);
    const source: OpenedSource = isFile
      ? await openFileSource(options.url)
      : await openHttpSource(options.url, { ...transfer, ifNoneMatch: previousEtag });
    if (source.notModified) return { status: "up-to-date", url: source.url };

    const temp = temporaryPath(options.dest);
    try {
      const tee = createHashTee();
      const sink = createDeferredSink(async (head) => {
        const compression = detectCompression(head);
        const size = compression === "zstd" ? zstdFrameContentSize(head) : compression === "none" ? source.size : undefined;
        await ensureSpace(dirname(options.dest), size);
        await mkdir(dirname(options.dest), { recursive: true });
        return openImageSink(options.type, compression, temp, options.decoders ?? "auto");
      });
      const progress = createProgressMeter({
        total: source.size, intervalSeconds: options.progressIntervalSeconds, url: () => source.url, write: info,
      });
      await pipeline(source.body, tee, progress, sink, { signal: options.signal });
      checkImageHash(tee.digest(), expected, source.url);
      if (options.readOnly) await makeReadOnly(temp);
      await moveIntoPlace(temp, options.dest);
      await storeEtag(options.dest, source.etag);
      return { status: "pulled", url: source.url, bytes: tee.bytes, sha256: tee.digest() };
    } catch (error) {
      await removePath(temp);
      throw options.signal?.aborted ? options.signal.reason : error;
    }
  } finally {
    await dispatcher.destroy();
  }
}

/** Where the served bytes go: decoded (by a system binary straight into the file when it can) into a sparse file or a folder. */
async function openImageSink(type: ImageType, compression: Compression, temp: string, decoders: "auto" | "js"): Promise<SinkStages> {
  if (type === "raw") {
    if (compression === "none") return createSparseFileSink(temp);
    const native = sparseFileDecoder(compression, decoders);
    if (native) return createNativeFileDecoder({ ...native, format: compression, path: temp });
    return [createDecoder({ implementation: decoders }), createSparseFileSink(temp)];
  }
  // Loaded only for tar images: raw pulls never evaluate the tar code.
  const { createTarUnpackSink } = await import("./tar-unpack-sink.ts");
  await mkdir(temp, { mode: 0o755 });
  return [createDecoder({ implementation: decoders }), createTarUnpackSink(temp)];
}
