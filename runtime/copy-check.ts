// The whole-image check of a lazy image's complete local copy: what verify= asked for (a pinned hash, or the
// published checksum, signed or not) against the SHA-256 of the copy. dm-verity has checked every block
// the system read, but only this says the copy is the image that was published, block for block.
import { createHash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { checkImageHash, type Expectation } from "./verify.ts";

export interface CopyCheck {
  /** The copy is the published image, or nothing was expected (verify=no). */
  verified: boolean;
  /** What to log: a match, or (loudly) a mismatch; nothing when nothing was expected. */
  line?: string;
}

/** The SHA-256 of the first `size` bytes of `file`, read in 4 MiB pieces. */
async function sha256Of(file: FileHandle, size: number): Promise<string> {
  const hash = createHash("sha256");
  const buffer = Buffer.allocUnsafe(4 << 20);
  for (let offset = 0; offset < size;) {
    const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, size - offset), offset);
    if (bytesRead === 0) throw new Error(`the copy ends at byte ${offset} of ${size}`);
    hash.update(buffer.subarray(0, bytesRead));
    offset += bytesRead;
  }
  return hash.digest("hex");
}

/**
 * Checks the complete copy in `file` (`size` bytes) against `expected`.
 *
 * @example
 * const { verified, line } = await checkCopy(file, size, { hash, source: "SHA256SUMS" }, { url, dest, temp });
 * if (line) log(line);
 */
export async function checkCopy(file: FileHandle, size: number, expected: Expectation | undefined, where: { url: string; dest: string; temp: string }): Promise<CopyCheck> {
  if (!expected) return { verified: true };
  const actual = await sha256Of(file, size);
  try {
    checkImageHash(actual, expected, where.url);
    return { verified: true, line: `the copy matches ${expected.source} (sha256 ${actual})` };
  } catch (error) {
    return {
      verified: false,
      line: `WARNING: ${(error as Error).message}: the complete copy is NOT the image that was published; it is left at ${where.temp} instead of ${where.dest}, and dm-verity goes on checking every block read`,
    };
  }
}
