// What a PKCS#7 signer info names a certificate by: its issuer and serial number, or its subject key
// identifier. node:crypto's X509Certificate gives the issuer only as text, so the identity is read from the
// certificate's DER here (exact bytes compare; text would not).
import { X509Certificate } from "node:crypto";
import { childrenOf, CLASS_CONTEXT, DerError, integerBytesOf, isTag, octetsOf, oidOf, parseDer, sequence, TAG, type Der } from "./pkcs7-der.ts";

export interface CertificateIdentity {
  /** DER of the issuer Name, compared byte for byte with a signer info's issuer. */
  issuer: Buffer;
  /** The serial number's magnitude (no leading zero bytes). */
  serial: Buffer;
  /** The subject key identifier extension's key identifier, when the certificate has one. */
  subjectKeyId?: Buffer;
}

const SUBJECT_KEY_IDENTIFIER = "2.5.29.14";

/**
 * Reads issuer, serial and subject key identifier from a certificate's DER.
 *
 * ```ts
 * const id = certificateIdentity(new X509Certificate(pem).raw);
 * id.serial.toString("hex");   // "60e00fe489…"
 * ```
 */
export function certificateIdentity(der: Buffer): CertificateIdentity {
  const [tbs] = sequence(parseDer(der), "certificate");
  const fields = sequence(tbs, "tbsCertificate");
  // version [0] EXPLICIT is absent for v1 certificates.
  const at = isTag(fields[0], 0, CLASS_CONTEXT) ? 1 : 0;
  const serial = integerBytesOf(fields[at], "certificate serial number");
  const issuer = fields[at + 2];
  if (issuer === undefined || !isTag(issuer, TAG.SEQUENCE)) throw new DerError("certificate issuer: expected a SEQUENCE");
  const extensions = fields.slice(at + 6).find((f) => isTag(f, 3, CLASS_CONTEXT));
  let subjectKeyId: Buffer | undefined;
  if (extensions) {
    const [list] = childrenOf(extensions);
    for (const extension of sequence(list, "certificate extensions")) {
      const parts = sequence(extension, "certificate extension");
      if (oidOf(parts[0], "extension id") !== SUBJECT_KEY_IDENTIFIER) continue;
      const value = octetsOf(parts[parts.length - 1], "subject key identifier extension");
      subjectKeyId = octetsOf(parseDer(value), "subject key identifier");
    }
  }
  return { issuer: issuer.raw, serial, ...(subjectKeyId ? { subjectKeyId } : {}) };
}

const NAME_ATTRIBUTES: Record<string, string> = {
  "2.5.4.3": "CN", "2.5.4.5": "serialNumber", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
  "2.5.4.10": "O", "2.5.4.11": "OU", "1.2.840.113549.1.9.1": "emailAddress", "0.9.2342.19200300.100.1.25": "DC",
};

function attributeValueText(value: Der): string {
  switch (value.tagNumber) {
    case TAG.UTF8_STRING: case TAG.PRINTABLE_STRING: case TAG.IA5_STRING: return value.value.toString("utf8");
    case TAG.T61_STRING: return value.value.toString("latin1");
    case TAG.BMP_STRING: return Buffer.from(value.value).swap16().toString("utf16le");
    default: return `#${value.raw.toString("hex")}`;
  }
}

/**
 * A distinguished name (DER) as one line of text, in encoded order, for messages.
 *
 * ```ts
 * formatName(id.issuer);   // "CN=netimport test, O=Example"
 * ```
 */
export function formatName(der: Buffer): string {
  const parts: string[] = [];
  for (const rdn of sequence(parseDer(der), "name")) {
    for (const pair of sequence(rdn, "relative distinguished name", TAG.SET)) {
      const [type, value] = sequence(pair, "name attribute");
      const oid = oidOf(type, "name attribute type");
      parts.push(`${NAME_ATTRIBUTES[oid] ?? oid}=${value ? attributeValueText(value) : ""}`);
    }
  }
  return parts.join(", ");
}

/** A certificate's subject as one line ("CN=…, O=…"). */
export function subjectOf(certificate: X509Certificate): string {
  try {
    const [tbs] = sequence(parseDer(certificate.raw), "certificate");
    const fields = sequence(tbs, "tbsCertificate");
    const at = isTag(fields[0], 0, CLASS_CONTEXT) ? 1 : 0;
    return formatName(fields[at + 4]?.raw ?? Buffer.alloc(0));
  } catch {
    // Node parsed it, so it is a certificate: fall back to Node's multi-line rendering.
    return certificate.subject.split("\n").join(", ");
  }
}
