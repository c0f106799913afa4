// `netimport pull`, composed: settle the expected hash (small files first), peek at the image's
// first bytes (compression, announced size → room check), then into a hidden temporary
//   source → hash tee → progress → decoder → sink (sparse file | tar unpack)
//   source → hash tee → progress → zstd/xz binary → file      (raw, with the system's binary at hand)
//   source → progress → sparse file sink that also hashes      (raw, uncompressed)
// then verify → rename into place. Any failure removes the temporary; DEST only ever holds a
// complete, verified image.
import { mkdir } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { dirname } from "node:path";
import type { Duplex, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createDecoder, decoderKind, detectCompression, sparseFileDecoder, type Compression } from "./decoder.ts";
import { makeReadOnly, moveIntoPlace, readStoredEtag, removePath, storeEtag, temporaryPath } from "./destination.ts";
import type { DnsPaths } from "./dns-fallback.ts";
import { openFileSource, readSmallFile } from "./file-source.ts";
import { createHashTee } from "./hash-tee.ts";
import { createDispatcher } from "./http-dispatcher.ts";
import { fetchSmallFile, openHttpSource, type OpenedSource, type TransferOptions } from "./http-source.ts";
import type { ImageType } from "../generator/import-request.ts";
import { createNativeFileDecoder } from "./native-file-decoder.ts";
import { peekHead } from "./peek-head.ts";
import { createProgressMeter } from "./progress.ts";
import { ensureSpace } from "./ram-space.ts";
import { dropSpareSliceWorker, prestartSliceWorker } from "./slice-worker.ts";
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
  // The image's sink (or its hash) runs on a worker thread, given a second CPU: start one while the
  // request is out (dropped if a system binary writes the image).
  if (availableParallelism() > 1) prestartSliceWorker();
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
      const { head, stream: body } = await peekHead(source.body);
      const compression = detectCompression(head);
      const size = compression === "zstd" ? zstdFrameContentSize(head) : compression === "none" ? source.size : undefined;
      await ensureSpace(dirname(options.dest), size);
      await mkdir(dirname(options.dest), { recursive: true });
      const progress = createProgressMeter({
        total: source.size, intervalSeconds: options.progressIntervalSeconds, url: () => source.url, write: info,
      });
      const image = await openImageSink(options.type, compression, temp, options.decoders ?? "auto", progress);
      await pipeline([body, ...image.stages], { signal: options.signal });
      const sha256 = image.sha256();
      checkImageHash(sha256, expected, source.url);
      if (options.readOnly) await makeReadOnly(temp);
      await moveIntoPlace(temp, options.dest);
      await storeEtag(options.dest, source.etag);
      return { status: "pulled", url: source.url, bytes: image.bytes(), sha256 };
    } catch (error) {
      // Failing before the pipeline took the body (no room, say): stop the transfer here.
      source.body.destroy();
      await removePath(temp);
      throw options.signal?.aborted ? options.signal.reason : error;
    }
  } finally {
    await dispatcher.destroy();
  }
}

/** The stages after the source, and where the SHA-256 of the bytes as served comes from. */
interface ImageStages {
  stages: [Duplex, ...(Duplex | Writable)[]];
  sha256(): string;
  bytes(): number;
}

/**
 * Where the served bytes go: hashed, then decoded (by a system binary straight into the file when it
 * can) into a sparse file or a folder. An uncompressed raw image is hashed by the sparse sink itself,
 * on the thread that writes it (sparse-file-sink.ts): the bytes as served are the bytes written.
 * When a system binary decodes, the main thread only passes bytes along and hashes them itself: a
 * hashing thread would gain nothing and cost ~15 MiB (with lbzip2's own ~25 MiB, over the budget).
 */
async function openImageSink(type: ImageType, compression: Compression, temp: string, decoders: "auto" | "js", progress: Duplex): Promise<ImageStages> {
  if (type === "raw" && compression === "none") {
    const sink = createSparseFileSink(temp, { hash: true });
    return { stages: [progress, sink], sha256: () => sink.result!.sha256!, bytes: () => sink.bytesWritten };
  }
  const native = type === "raw" ? sparseFileDecoder(compression, decoders) : undefined;
  const tee = native || decoderKind(compression, decoders) === "native" ? createHashTee("inline") : createHashTee();
  const hashed = { sha256: () => tee.digest(), bytes: () => tee.bytes };
  if (type === "raw") {
    if (native) {
      dropSpareSliceWorker(); // no thread of ours needed: the binary writes the file
      return { stages: [tee, progress, createNativeFileDecoder({ ...native, format: compression, path: temp })], ...hashed };
    }
    return { stages: [tee, progress, createDecoder({ implementation: decoders }), createSparseFileSink(temp)], ...hashed };
  }
  // Loaded only for tar images: raw pulls never evaluate the tar code.
  const { createTarUnpackSink } = await import("./tar-unpack-sink.ts");
  await mkdir(temp, { mode: 0o755 });
  return { stages: [tee, progress, createDecoder({ implementation: decoders }), createTarUnpackSink(temp)], ...hashed };
}
