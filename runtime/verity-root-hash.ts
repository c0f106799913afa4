// Where a verity device's root hash comes from, and why it can be trusted: given by the operator
// (roothash=/usrhash= on the kernel command line, which the boot chain measured or signed), or taken from
// the signature partition's JSON, but only once its PKCS#7 signature over that hash (lower-case hex text,
// as systemd-repart signs it) verifies with a certificate in the verity.d directories.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { SignatureError, verifyDetachedSignature } from "./pkcs7-verify.ts";
import { subjectOf } from "./pkcs7-certificate.ts";
import { loadVerityCertificates, VERITY_CERTIFICATE_DIRS } from "./verity-certificates.ts";
import { parseVeritySig, VeritySigError } from "./verity-sig.ts";

/** No trustworthy root hash; the message is the one line the console shows. */
class RootHashError extends Error {
  override name = "RootHashError";
}

export interface RootHash {
  rootHash: string;
  from: "given" | "signature";
  /** For a signed hash: the certificate that verified it. */
  certificatePath?: string;
  certificateSubject?: string;
}

export interface RootHashSources {
  /** The root hash given on the command line, if any: it wins, and the signature is not read. */
  given?: string;
  /** The file `netimport attach` copied the signature partition to (missing file: not signed). */
  signatureFile?: string;
  /** The verity.d directories to take certificates from (default: systemd's). */
  certificateDirs?: readonly string[];
  /** Names the protected device in the message when there is no hash at all. */
  dataName: string;
}

async function readSignatureFile(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new RootHashError(`cannot read the root hash signature ${path}: ${(error as Error).message}`);
  }
}

/**
 * Decides the root hash, verifying a signature when that is where it comes from.
 *
 * ```ts
 * const h = await resolveRootHash({ signatureFile: "/run/netimport/root.verity-sig", dataName: "/run/netimport/root.data" });
 * h.from;                 // "signature"
 * h.certificateSubject;   // "CN=Example OS signing key"
 * ```
 */
export async function resolveRootHash(sources: RootHashSources): Promise<RootHash> {
  if (sources.given !== undefined) return { rootHash: sources.given.toLowerCase(), from: "given" };
  const bytes = sources.signatureFile === undefined ? undefined : await readSignatureFile(sources.signatureFile);
  const dirs = sources.certificateDirs ?? VERITY_CERTIFICATE_DIRS;
  if (bytes === undefined) {
    throw new RootHashError(`${sources.dataName} has a verity partition but no root hash: give roothash= (usrhash= for /usr) on the kernel command line, or sign it (verity-sig partition) with a certificate in ${dirs[0]}`);
  }
  const file = sources.signatureFile!;
  let sig;
  try {
    sig = parseVeritySig(bytes, `the root hash signature ${file}`);
  } catch (error) {
    if (error instanceof VeritySigError) throw new RootHashError(error.message);
    throw error;
  }
  const { trusted, skipped } = await loadVerityCertificates(dirs);
  const skippedText = skipped.length ? `; skipped ${skipped.join(", ")}` : "";
  if (trusted.length === 0) {
    throw new RootHashError(`the root hash ${sig.rootHash} is signed (${file}), but there is no certificate (*.crt) to check it with in ${dirs.join(", ")}${skippedText}`);
  }
  try {
    const verified = verifyDetachedSignature(sig.signature, Buffer.from(sig.rootHash, "latin1"), trusted);
    return { rootHash: sig.rootHash, from: "signature", certificatePath: verified.signer.path, certificateSubject: verified.subject };
  } catch (error) {
    if (!(error instanceof SignatureError)) throw error;
    const tried = trusted.map((t) => `${t.path} (${subjectOf(t.certificate)})`).join(", ");
    const named = sig.certificateFingerprint && !trusted.some((t) => createHash("sha256").update(t.certificate.raw).digest("hex") === sig.certificateFingerprint)
      ? `; it names the certificate with SHA-256 fingerprint ${sig.certificateFingerprint}, which is not among them`
      : "";
    throw new RootHashError(`the signature of root hash ${sig.rootHash} (${file}) does not verify: ${error.message}; certificates tried: ${tried}${named}${skippedText}`);
  }
}
