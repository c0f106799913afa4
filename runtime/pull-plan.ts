// How one pull writes its image, decided once from what is known before the first byte is written:
// the image type, the compression its first bytes announce, whether verification expects a hash, and
// the programs installed. The plan names who decodes, whether the served bytes are hashed, and what
// writes the image; the stages are built from it and nothing downstream decides any of it again.
//
//   served bytes (counted, hashed when verifying) → decoder → sparse file | GNU tar
//   served bytes (counted, hashed when verifying) → zstd/xz writing the image file itself
import type { Duplex, Writable } from "node:stream";
import type { ImageType } from "../generator/import-request.ts";
import { chooseDecoder, createDecoder, type Compression, type DecoderPlan, type DecoderPreference } from "./decoder.ts";
import { createNativeFileDecoder } from "./native-file-decoder.ts";
import { createSparseFileSink } from "./sparse-file-sink.ts";
import type { GnuTar } from "./tar-unpack-sink.ts";

export interface PullPlan {
  type: ImageType;
  compression: Compression;
  decoder: DecoderPlan;
  /** Whether the served bytes are hashed: only when verification compares the hash with one it expects. */
  hash: boolean;
  /** What writes the image: the sparse file sink, the decoding binary itself (its stdout is the file), or GNU tar. */
  writer: { kind: "sparse-file" } | { kind: "decoder" } | { kind: "tar"; tar: GnuTar };
}

export interface PlanInputs {
  type: ImageType;
  compression: Compression;
  hash: boolean;
  decoders: DecoderPreference;
  /** GNU tar, for tar images (found before the download). */
  tar?: GnuTar;
}

/**
 * The plan for one image.
 *
 * ```ts
 * planPull({ type: "raw", compression: "zstd", hash: false, decoders: "auto" });
 * // { …, decoder: { kind: "process", command: "/usr/bin/zstd", writesFile: true, … }, hash: false, writer: { kind: "decoder" } }
 * ```
 */
export function planPull(inputs: PlanInputs): PullPlan {
  const { type, compression, hash } = inputs;
  const decoder = chooseDecoder(compression, type === "raw" ? "file" : "stream", inputs.decoders);
  if (type === "tar") {
    if (!inputs.tar) throw new Error("a tar image needs GNU tar (found before the download)");
    return { type, compression, decoder, hash, writer: { kind: "tar", tar: inputs.tar } };
  }
  const writesFile = decoder.kind === "process" && decoder.writesFile;
  return { type, compression, decoder, hash, writer: writesFile ? { kind: "decoder" } : { kind: "sparse-file" } };
}

/**
 * The plan as a sentence for the pull's log.
 *
 * @example describePlan(plan) // "zstd, decoded by /usr/bin/zstd straight into the image file; served bytes hashed (SHA-256)"
 */
export function describePlan(plan: PullPlan): string {
  const { decoder } = plan;
  const decoding = decoder.kind === "none" ? "not compressed"
    : decoder.kind === "process" ? `${plan.compression}, decoded by ${decoder.command}`
    : decoder.kind === "zlib" ? `${plan.compression}, decoded by Node's zlib`
    : `${plan.compression}, decoded by netimport's own ${decoder.format === "xz" ? "WASM" : "JS"} decoder (no system binary)`;
  const written = plan.writer.kind === "decoder" ? " straight into the image file"
    : plan.writer.kind === "tar" ? `, unpacked by ${plan.writer.tar.path}`
    : ", written as a sparse file";
  return `${decoding}${written}; ${plan.hash ? "served bytes hashed (SHA-256)" : "not hashed (nothing to verify)"}`;
}

/**
 * The stages after the served-bytes stage, writing into `temp` (the empty file or folder the pull made).
 *
 * @example await pipeline(body, served, ...imageStages(plan, temp));
 */
export async function imageStages(plan: PullPlan, temp: string): Promise<(Duplex | Writable)[]> {
  const { decoder, writer } = plan;
  if (writer.kind === "decoder") {
    if (decoder.kind !== "process") throw new Error("only a system decoder writes the file itself");
    return [createNativeFileDecoder(decoder, temp)];
  }
  const decoding = decoder.kind === "none" ? [] : [createDecoder(decoder)];
  if (writer.kind === "sparse-file") return [...decoding, createSparseFileSink(temp)];
  // Loaded only for tar images: raw pulls never evaluate the tar code.
  const { createTarUnpackSink } = await import("./tar-unpack-sink.ts");
  return [...decoding, createTarUnpackSink(temp, writer.tar)];
}
