// Parses a PKCS#7 / CMS SignedData structure (RFC 2315, RFC 5652) from DER into what verifying a detached
// signature needs: each signer's certificate reference, algorithms, signed attributes and signature.
// Embedded certificates are skipped on purpose: like systemd (PKCS7_NOINTERN), only certificates the
// machine trusts may verify a root hash.
import { childrenOf, CLASS_CONTEXT, DerError, integerBytesOf, isTag, octetsOf, oidOf, parseDer, sequence, smallIntegerOf, TAG, type Der } from "./pkcs7-der.ts";

export const OID = {
  signedData: "1.2.840.113549.1.7.2",
  data: "1.2.840.113549.1.7.1",
  contentType: "1.2.840.113549.1.9.3",
  messageDigest: "1.2.840.113549.1.9.4",
} as const;

export interface SignedAttributes {
  /**
   * The attributes as they are signed: the DER of the SET OF Attribute (RFC 5652 §5.4: the [0] IMPLICIT
   * tag replaced by the SET tag), taken from the encoded bytes, never re-encoded.
   */
  signedBytes: Buffer;
  /** The contentType attribute's value (an OID), if present. */
  contentType?: string;
  /** The messageDigest attribute's value, if present. */
  messageDigest?: Buffer;
}

export interface SignerInfo {
  /** Issuer Name (DER) and serial number magnitude, when the signer is named that way. */
  issuer?: Buffer;
  serial?: Buffer;
  /** Subject key identifier, when the signer is named by it (CMS version 3). */
  subjectKeyId?: Buffer;
  /** Digest algorithm OID. */
  digestAlgorithm: string;
  signedAttributes?: SignedAttributes;
  /** Signature algorithm OID (rsaEncryption, sha256WithRSAEncryption, ecdsa-with-SHA256, …). */
  signatureAlgorithm: string;
  signature: Buffer;
}

export interface SignedData {
  /** The encapsulated content type (id-data for a root hash signature). */
  contentType: string;
  /** The encapsulated content, when the signature is not detached. */
  content?: Buffer;
  signers: SignerInfo[];
}

function algorithmOf(element: Der | undefined, what: string): string {
  return oidOf(sequence(element, what)[0], what);
}

function parseSignedAttributes(element: Der): SignedAttributes {
  // The encoding with the [0] tag (0xa0) replaced by SET (0x31): the bytes that were signed.
  const signedBytes = Buffer.from(element.raw);
  signedBytes[0] = 0x31;
  const result: SignedAttributes = { signedBytes };
  const seen = new Set<string>();
  for (const attribute of childrenOf(element)) {
    const [type, values] = sequence(attribute, "signed attribute");
    const oid = oidOf(type, "signed attribute type");
    if (seen.has(oid)) throw new DerError(`signed attribute ${oid} appears twice`);
    seen.add(oid);
    const list = sequence(values, `signed attribute ${oid} values`, TAG.SET);
    if (oid === OID.contentType || oid === OID.messageDigest) {
      if (list.length !== 1) throw new DerError(`signed attribute ${oid} must have exactly one value`);
      if (oid === OID.contentType) result.contentType = oidOf(list[0], "contentType attribute");
      else result.messageDigest = octetsOf(list[0], "messageDigest attribute");
    }
  }
  return result;
}

function parseSignerInfo(element: Der): SignerInfo {
  const fields = sequence(element, "signer info");
  smallIntegerOf(fields[0], "signer info version");
  const sid = fields[1];
  let identity: Pick<SignerInfo, "issuer" | "serial" | "subjectKeyId">;
  if (sid !== undefined && isTag(sid, TAG.SEQUENCE)) {
    const [issuer, serial] = childrenOf(sid);
    if (issuer === undefined || !isTag(issuer, TAG.SEQUENCE)) throw new DerError("signer info: issuer is not a Name");
    identity = { issuer: issuer.raw, serial: integerBytesOf(serial, "signer serial number") };
  } else if (sid !== undefined && isTag(sid, 0, CLASS_CONTEXT) && !sid.constructed) {
    identity = { subjectKeyId: sid.value };
  } else throw new DerError("signer info: signer identifier is neither issuer and serial number nor subject key identifier");
  let at = 2;
  const digestAlgorithm = algorithmOf(fields[at++], "signer digest algorithm");
  let signedAttributes: SignedAttributes | undefined;
  if (isTag(fields[at], 0, CLASS_CONTEXT)) signedAttributes = parseSignedAttributes(fields[at++]!);
  const signatureAlgorithm = algorithmOf(fields[at++], "signer signature algorithm");
  const signature = octetsOf(fields[at++], "signature value");
  if (at < fields.length && !isTag(fields[at], 1, CLASS_CONTEXT)) throw new DerError("signer info: unexpected trailing field");
  return { ...identity, digestAlgorithm, ...(signedAttributes ? { signedAttributes } : {}), signatureAlgorithm, signature };
}

/**
 * Parses a DER-encoded PKCS#7 ContentInfo holding SignedData.
 *
 * ```ts
 * const sd = parseSignedData(Buffer.from(json.signature, "base64"));
 * sd.signers[0]!.signatureAlgorithm;   // "1.2.840.113549.1.1.1" (rsaEncryption)
 * ```
 * Throws DerError naming what is malformed.
 */
export function parseSignedData(der: Buffer): SignedData {
  const [type, explicit] = sequence(parseDer(der), "PKCS#7 ContentInfo");
  const contentType = oidOf(type, "PKCS#7 content type");
  if (contentType !== OID.signedData) throw new DerError(`PKCS#7 content is ${contentType}, not SignedData`);
  if (explicit === undefined || !isTag(explicit, 0, CLASS_CONTEXT)) throw new DerError("PKCS#7 ContentInfo has no content");
  const fields = sequence(childrenOf(explicit)[0], "SignedData");
  smallIntegerOf(fields[0], "SignedData version");
  sequence(fields[1], "SignedData digest algorithms", TAG.SET);
  const encapsulated = sequence(fields[2], "SignedData encapsulated content");
  const innerType = oidOf(encapsulated[0], "encapsulated content type");
  let content: Buffer | undefined;
  if (encapsulated[1] !== undefined) {
    if (!isTag(encapsulated[1], 0, CLASS_CONTEXT)) throw new DerError("encapsulated content: expected [0]");
    content = octetsOf(childrenOf(encapsulated[1])[0], "encapsulated content");
  }
  // Optional certificates [0] and CRLs [1], then the signer infos.
  let at = 3;
  while (isTag(fields[at], 0, CLASS_CONTEXT) || isTag(fields[at], 1, CLASS_CONTEXT)) at++;
  const signers = sequence(fields[at], "SignedData signer infos", TAG.SET).map(parseSignerInfo);
  if (at + 1 !== fields.length) throw new DerError("SignedData: unexpected trailing field");
  return { contentType: innerType, ...(content ? { content } : {}), signers };
}
