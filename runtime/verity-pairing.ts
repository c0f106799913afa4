// Which partitions of a DDI belong together, as systemd's dissect_image() decides it: the root (or /usr)
// partition, its `-verity` hash partition and its `-verity-sig` signature partition. When the root hash is
// known (given, or from a signature partition), the data partition is the one whose partition UUID is the
// hash's first 128 bits, and the verity partition the one whose UUID is its last 128 bits (systemd-repart
// makes them so). Partitions marked no-auto are ignored, as systemd ignores them. Pure: the signature
// partitions are read by the caller.
import { GPT_FLAG_NO_AUTO, partitionTypeFor, type Partition } from "./gpt.ts";
import type { VeritySig } from "./verity-sig.ts";

export type Kind = "root" | "usr";

/** A DDI whose partitions cannot be paired as asked; the message says why, in one line. */
class VerityPairingError extends Error {
  override name = "VerityPairingError";
}

export interface PairingInput {
  /** The image's partitions, in table order. */
  partitions: Partition[];
  kind: Kind;
  /** Node's architecture name (default process.arch). */
  arch?: string;
  /** The root hash the operator gave (roothash= / usrhash=), lower-case hex. */
  rootHash?: string;
  /** The parsed `-verity-sig` partitions of this kind, by partition number. */
  signatures: ReadonlyMap<number, VeritySig>;
}

export interface Pairing {
  kind: Kind;
  data: Partition;
  verity?: Partition;
  signature?: { partition: Partition; content: VeritySig };
  rootHash?: string;
  rootHashFrom?: "given" | "signature";
  /** How the choice was made, when there was one to make ("the first of 2 root partitions: …"). */
  notes: string[];
}

/**
 * The partition UUIDs a root hash names: data = its first 128 bits, verity = its last 128 bits, written as
 * UUID text in byte order (sd_id128_t from the hash's bytes).
 *
 * ```ts
 * uuidsFromRootHash("00112233445566778899aabbccddeeff" + "…" + "0123456789abcdef0123456789abcdef");
 * // { data: "00112233-4455-6677-8899-aabbccddeeff", verity: "01234567-89ab-cdef-0123-456789abcdef" }
 * ```
 */
function uuidsFromRootHash(rootHash: string): { data: string; verity: string } {
  const hex = rootHash.toLowerCase();
  const uuid = (h: string) => `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
  return { data: uuid(hex.slice(0, 32)), verity: uuid(hex.slice(-32)) };
}

/** Partitions of one DPS type for the architecture, without the no-auto ones. */
export function partitionsOfType(partitions: Partition[], type: string | undefined): Partition[] {
  return type === undefined ? [] : partitions.filter((p) => p.type === type && (p.attributes & GPT_FLAG_NO_AUTO) === 0n);
}

const isHash = (text: string) => /^[0-9a-f]+$/.test(text) && text.length % 2 === 0 && text.length >= 32;

/** Which signature partition speaks for this data: the one with the given hash, else the first naming a data partition. */
function pickSignature(input: PairingInput, sigPartitions: Partition[], data: Partition[]): Pairing["signature"] {
  const candidates = sigPartitions.flatMap((partition) => {
    const content = input.signatures.get(partition.number);
    return content ? [{ partition, content }] : [];
  });
  if (input.rootHash !== undefined) return candidates.find((c) => c.content.rootHash === input.rootHash);
  return candidates.find((c) => isHash(c.content.rootHash) && data.some((d) => d.uuid === uuidsFromRootHash(c.content.rootHash).data)) ?? candidates[0];
}

/**
 * Pairs the `kind` partition of a DDI with its verity and signature partitions. Resolves to undefined when
 * the image has no partition of that kind; throws VerityPairingError when verity is demanded (a root hash
 * was given) or signed but cannot be paired.
 *
 * ```ts
 * const p = pairVerityPartitions({ partitions, kind: "root", signatures });
 * p?.verity?.number;   // 3
 * ```
 */
export function pairVerityPartitions(input: PairingInput): Pairing | undefined {
  const { partitions, kind } = input;
  const arch = input.arch ?? process.arch;
  const data = partitionsOfType(partitions, partitionTypeFor(kind, arch));
  const verities = partitionsOfType(partitions, partitionTypeFor(`${kind}-verity`, arch));
  const sigs = partitionsOfType(partitions, partitionTypeFor(`${kind}-verity-sig`, arch));
  const hashOption = kind === "root" ? "roothash=" : "usrhash=";
  if (input.rootHash !== undefined && !isHash(input.rootHash)) {
    throw new VerityPairingError(`${hashOption} must be an even number of at least 32 hexadecimal digits, not '${input.rootHash}'`);
  }
  if (data.length === 0) {
    if (input.rootHash !== undefined) throw new VerityPairingError(`${hashOption} was given, but the image has no ${kind} partition for ${arch}`);
    return undefined;
  }
  const signature = pickSignature(input, sigs, data);
  const rootHash = input.rootHash ?? signature?.content.rootHash;
  const rootHashFrom = input.rootHash !== undefined ? "given" : signature ? "signature" : undefined;
  const notes: string[] = [];
  const uuids = rootHash !== undefined && isHash(rootHash) ? uuidsFromRootHash(rootHash) : undefined;

  let chosen = uuids ? data.find((p) => p.uuid === uuids.data) : undefined;
  if (!chosen) {
    chosen = data[0]!;
    if (data.length > 1) {
      notes.push(`the first of ${data.length} ${kind} partitions (${data.map((p) => p.number).join(", ")})${uuids ? `: none has the UUID ${uuids.data} the root hash names` : ": no root hash names one"}`);
    }
  } else if (data.length > 1) {
    notes.push(`of ${data.length} ${kind} partitions, the one the root hash names`);
  }

  let verity = uuids ? verities.find((p) => p.uuid === uuids.verity) : undefined;
  if (!verity && verities.length === 1) verity = verities[0];
  if (!verity && verities.length > 1) {
    throw new VerityPairingError(`the image has ${verities.length} ${kind}-verity partitions (${verities.map((p) => p.number).join(", ")}) and ${uuids ? `none has the UUID ${uuids.verity} the root hash names` : "no root hash to tell which one is partition " + chosen.number + "'s"}`);
  }
  if (!verity && rootHashFrom === "given") {
    throw new VerityPairingError(`${hashOption} was given, but the image has no ${kind}-verity partition for ${kind} partition ${chosen.number}`);
  }
  if (!verity && rootHashFrom === "signature") {
    throw new VerityPairingError(`the image has a ${kind}-verity-sig partition (${signature!.partition.number}) but no ${kind}-verity partition`);
  }
  return {
    kind,
    data: chosen,
    ...(verity ? { verity } : {}),
    ...(verity && signature ? { signature } : {}),
    ...(verity && rootHash !== undefined ? { rootHash } : {}),
    ...(verity && rootHashFrom ? { rootHashFrom } : {}),
    notes,
  };
}
