// Verifies a detached PKCS#7 signature over some content with trusted certificates, as systemd checks a
// verity root hash signature in userspace (OpenSSL's PKCS7_verify with PKCS7_NOINTERN|PKCS7_NOVERIFY):
// every signer must be one of the trusted certificates themselves (certificates embedded in the signature
// are ignored, no chain is built, validity dates are not checked), and every signer's signature must verify.
import { createHash, verify, type X509Certificate } from "node:crypto";
import { certificateIdentity, formatName, subjectOf, type CertificateIdentity } from "./pkcs7-certificate.ts";
import { DerError } from "./pkcs7-der.ts";
import { OID, parseSignedData, type SignerInfo } from "./pkcs7-signed-data.ts";

/** A certificate the machine trusts, and where it came from. */
export interface TrustedCertificate {
  path: string;
  certificate: X509Certificate;
}

export type SignatureFailure = "malformed" | "not-detached" | "unsupported" | "unknown-signer" | "digest-mismatch" | "bad-signature";

/** Why a signature was refused; `reason` tells the kinds apart. */
export class SignatureError extends Error {
  override name = "SignatureError";
  readonly reason: SignatureFailure;
  constructor(reason: SignatureFailure, message: string) {
    super(message);
    this.reason = reason;
  }
}

const DIGESTS: Record<string, string> = {
  "2.16.840.1.101.3.4.2.1": "sha256",
  "2.16.840.1.101.3.4.2.2": "sha384",
  "2.16.840.1.101.3.4.2.3": "sha512",
};

/** Signature algorithm OIDs: the key type they need, and the digest they imply (if they name one). */
const SIGNATURE_ALGORITHMS: Record<string, { key: "rsa" | "ec"; digest?: string }> = {
  "1.2.840.113549.1.1.1": { key: "rsa" }, // rsaEncryption, what OpenSSL writes into PKCS#7
  "1.2.840.113549.1.1.11": { key: "rsa", digest: "sha256" },
  "1.2.840.113549.1.1.12": { key: "rsa", digest: "sha384" },
  "1.2.840.113549.1.1.13": { key: "rsa", digest: "sha512" },
  "1.2.840.10045.2.1": { key: "ec" }, // id-ecPublicKey, written by some signers instead of ecdsa-with-*
  "1.2.840.10045.4.3.2": { key: "ec", digest: "sha256" },
  "1.2.840.10045.4.3.3": { key: "ec", digest: "sha384" },
  "1.2.840.10045.4.3.4": { key: "ec", digest: "sha512" },
};

export interface VerifiedSignature {
  /** The trusted certificate of the (first) signer. */
  signer: TrustedCertificate;
  /** Its subject, as one line. */
  subject: string;
}

function identityOf(trusted: TrustedCertificate): CertificateIdentity | undefined {
  try {
    return certificateIdentity(trusted.certificate.raw);
  } catch {
    return undefined;
  }
}

function names(signer: SignerInfo, id: CertificateIdentity): boolean {
  if (signer.subjectKeyId) return id.subjectKeyId !== undefined && id.subjectKeyId.equals(signer.subjectKeyId);
  return signer.issuer !== undefined && signer.serial !== undefined && id.issuer.equals(signer.issuer) && id.serial.equals(signer.serial);
}

function describeSigner(signer: SignerInfo): string {
  if (signer.subjectKeyId) return `subject key identifier ${signer.subjectKeyId.toString("hex")}`;
  let issuer: string;
  try {
    issuer = formatName(signer.issuer!);
  } catch {
    issuer = "(unreadable)";
  }
  return `issuer "${issuer}", serial ${signer.serial!.toString("hex")}`;
}

function checkOne(signer: SignerInfo, content: Buffer, trusted: TrustedCertificate[]): TrustedCertificate {
  const digest = DIGESTS[signer.digestAlgorithm];
  if (!digest) throw new SignatureError("unsupported", `the signature uses digest algorithm ${signer.digestAlgorithm}; only SHA-256, SHA-384 and SHA-512 are accepted`);
  const algorithm = SIGNATURE_ALGORITHMS[signer.signatureAlgorithm];
  if (!algorithm) throw new SignatureError("unsupported", `the signature uses signature algorithm ${signer.signatureAlgorithm}; only RSA (PKCS#1 v1.5) and ECDSA are accepted`);
  if (algorithm.digest && algorithm.digest !== digest) {
    throw new SignatureError("malformed", `the signer's digest algorithm (${digest}) and signature algorithm (${algorithm.digest}) disagree`);
  }
  const match = trusted.find((t) => {
    const id = identityOf(t);
    return id !== undefined && names(signer, id);
  });
  if (!match) {
    throw new SignatureError("unknown-signer", `the signer (${describeSigner(signer)}) is none of the trusted certificates`);
  }
  const keyType = match.certificate.publicKey.asymmetricKeyType;
  if (keyType !== algorithm.key) {
    throw new SignatureError("unsupported", `${match.path} holds a ${keyType ?? "unknown"} key, but the signature is ${algorithm.key === "rsa" ? "RSA" : "ECDSA"}`);
  }
  let signed = content;
  if (signer.signedAttributes) {
    // RFC 5652 §5.4: with signed attributes the signature covers them, and they carry the content's digest.
    const { signedBytes, messageDigest, contentType } = signer.signedAttributes;
    if (contentType !== undefined && contentType !== OID.data) throw new SignatureError("malformed", `the signed content type attribute is ${contentType}, not data`);
    if (!messageDigest) throw new SignatureError("malformed", "the signature has signed attributes but no message digest attribute");
    if (!createHash(digest).update(content).digest().equals(messageDigest)) {
      throw new SignatureError("digest-mismatch", `the signed message digest is not the ${digest} of the signed content`);
    }
    signed = signedBytes;
  }
  if (!verify(digest, signed, match.certificate.publicKey, signer.signature)) {
    throw new SignatureError("bad-signature", `the signature by ${subjectOf(match.certificate)} (${match.path}) does not verify`);
  }
  return match;
}

/**
 * Verifies `signatureDer` (a DER PKCS#7 SignedData, detached) over `content`. Resolves to the signer's
 * trusted certificate; throws SignatureError saying why not.
 *
 * ```ts
 * const { subject } = verifyDetachedSignature(der, Buffer.from(rootHashHex), certificates);
 * ```
 */
export function verifyDetachedSignature(signatureDer: Buffer, content: Buffer, trusted: TrustedCertificate[]): VerifiedSignature {
  let parsed;
  try {
    parsed = parseSignedData(signatureDer);
  } catch (error) {
    if (error instanceof DerError) throw new SignatureError("malformed", `the signature is not a valid PKCS#7 signature: ${error.message}`);
    throw error;
  }
  if (parsed.contentType !== OID.data) throw new SignatureError("malformed", `the signature is over content of type ${parsed.contentType}, not data`);
  // As PKCS7_verify with separate content: an embedded copy is refused rather than compared.
  if (parsed.content !== undefined) throw new SignatureError("not-detached", "the signature embeds its content; a detached signature is expected");
  if (parsed.signers.length === 0) throw new SignatureError("malformed", "the signature has no signer");
  const signers = parsed.signers.map((s) => checkOne(s, content, trusted));
  const signer = signers[0]!;
  return { signer, subject: subjectOf(signer.certificate) };
}
