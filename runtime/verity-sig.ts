// The contents of a DPS `-verity-sig` partition, as systemd-repart writes it and systemd reads it
// (dissected_image_load_verity_sig_partition): one JSON object
// `{"rootHash": "<hex>", "certificateFingerprint": "<sha256 hex of the DER certificate>",
// "signature": "<base64 DER PKCS#7>"}`, padded with NUL bytes to the partition's size.

/** The most systemd reads from a signature partition (it refuses larger ones). */
export const VERITY_SIG_MAX_SIZE = 4 * 1024 * 1024;

/** A signature partition or file whose contents systemd would refuse too. */
export class VeritySigError extends Error {
  override name = "VeritySigError";
}

export interface VeritySig {
  /** The signed root hash, lower-case hex. */
  rootHash: string;
  /** SHA-256 of the signing certificate (lower-case hex), when given. */
  certificateFingerprint?: string;
  /** The DER PKCS#7 signature. */
  signature: Buffer;
  /** The JSON object again, without the padding, ready to be written to a file. */
  json: string;
}

const HEX = /^(?:[0-9a-fA-F]{2})+$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Parses a signature partition's bytes (or a file holding the same JSON). `where` names it in errors.
 *
 * ```ts
 * const sig = parseVeritySig(bytes, "partition 4 of os.raw");
 * sig.rootHash;   // "3f2a…b1"
 * ```
 */
export function parseVeritySig(bytes: Buffer, where: string): VeritySig {
  if (bytes.length > VERITY_SIG_MAX_SIZE) throw new VeritySigError(`${where} is larger than 4 MiB, which no signature needs`);
  const nul = bytes.indexOf(0);
  if (nul >= 0 && bytes.subarray(nul).some((b) => b !== 0)) throw new VeritySigError(`${where} has data after the NUL padding`);
  const text = bytes.subarray(0, nul >= 0 ? nul : bytes.length).toString("utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new VeritySigError(`${where} does not hold a JSON object${text.trim() === "" ? " (it is empty)" : ""}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new VeritySigError(`${where} does not hold a JSON object`);
  const object = value as Record<string, unknown>;
  const { rootHash, certificateFingerprint, signature } = object;
  if (typeof rootHash !== "string" || !HEX.test(rootHash)) throw new VeritySigError(`${where} has no hexadecimal "rootHash"`);
  if (typeof signature !== "string" || signature === "" || !BASE64.test(signature)) throw new VeritySigError(`${where} has no base64 "signature"`);
  if (certificateFingerprint !== undefined && (typeof certificateFingerprint !== "string" || !HEX.test(certificateFingerprint))) {
    throw new VeritySigError(`${where} has a "certificateFingerprint" that is not hexadecimal`);
  }
  return {
    rootHash: rootHash.toLowerCase(),
    ...(certificateFingerprint !== undefined ? { certificateFingerprint: certificateFingerprint.toLowerCase() } : {}),
    signature: Buffer.from(signature, "base64"),
    json: JSON.stringify(object),
  };
}
