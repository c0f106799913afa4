// The DER reader, the SignedData parser and detached signature verification, against signatures made by
// openssl (smime and cms: RSA and ECDSA, with and without signed attributes, by issuer and serial or by
// subject key identifier) and against damaged ones.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { certificateIdentity, formatName, subjectOf } from "../../../runtime/pkcs7-certificate.ts";
import { childrenOf, DerError, integerBytesOf, oidOf, parseDer, smallIntegerOf } from "../../../runtime/pkcs7-der.ts";
import { parseSignedData } from "../../../runtime/pkcs7-signed-data.ts";
import { SignatureError, verifyDetachedSignature, type TrustedCertificate } from "../../../runtime/pkcs7-verify.ts";
import { makeSigner, sign, type Signer } from "./ddi-fixtures.ts";

const ROOT_HASH = "3f2a00112233445566778899aabbccddeeff00112233445566778899aabbccb1";
let dir: string;
let rsa: Signer;
let ec: Signer;
let stranger: Signer;
const trusted = (...signers: Signer[]): TrustedCertificate[] =>
  signers.map((s) => ({ path: s.cert, certificate: new X509Certificate(readFileSync(s.cert)) }));

before(() => {
  dir = mkdtempSync(join(tmpdir(), "netimport-pkcs7-"));
  rsa = makeSigner(dir, "rsa signer");
  ec = makeSigner(dir, "ec signer", "ec");
  stranger = makeSigner(dir, "stranger");
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("DER reader", () => {
  test("short and long lengths, high tag numbers, nested elements", () => {
    assert.equal(parseDer(Buffer.from("020101", "hex")).raw.length, 3);
    const long = Buffer.concat([Buffer.from("048200c8", "hex"), Buffer.alloc(200, 7)]);
    const octets = parseDer(long);
    assert.equal(octets.value.length, 200);
    assert.equal(octets.raw.length, 204);
    const high = parseDer(Buffer.from("9f812a0105", "hex")); // [170] IMPLICIT, one byte
    assert.deepEqual([high.tagClass, high.tagNumber, high.value.toString("hex")], [2, 170, "05"]);
    const seq = parseDer(Buffer.from("3006020101020102", "hex"));
    assert.deepEqual(childrenOf(seq).map((c) => smallIntegerOf(c, "n")), [1, 2]);
  });

  test("object identifiers, integers", () => {
    assert.equal(oidOf(parseDer(Buffer.from("06092a864886f70d010702", "hex"))), "1.2.840.113549.1.7.2");
    assert.equal(oidOf(parseDer(Buffer.from("0603551d0e", "hex"))), "2.5.29.14");
    assert.equal(oidOf(parseDer(Buffer.from("0603883703", "hex"))), "2.999.3");
    assert.equal(integerBytesOf(parseDer(Buffer.from("020300ff01", "hex")), "serial").toString("hex"), "ff01");
  });

  test("refuses indefinite lengths, truncation, trailing bytes, bad OIDs", () => {
    assert.throws(() => parseDer(Buffer.from("308002010100", "hex")), /indefinite length .*BER, not DER/);
    assert.throws(() => parseDer(Buffer.from("0205010203", "hex")), DerError);
    assert.throws(() => parseDer(Buffer.from("02", "hex")), /truncated length/);
    assert.throws(() => parseDer(Buffer.from("02010100", "hex")), /1 trailing bytes/);
    assert.throws(() => parseDer(Buffer.from("0485ffffffffff", "hex")), /length of 5 bytes/);
    assert.throws(() => oidOf(parseDer(Buffer.from("06022a86", "hex"))), /truncated object identifier/);
    assert.throws(() => oidOf(parseDer(Buffer.from("0600", "hex"))), /empty object identifier/);
    assert.throws(() => smallIntegerOf(parseDer(Buffer.from("0201ff", "hex")), "version"), /not a small non-negative integer/);
  });

  test("any byte string either parses or fails with DerError, never anything else", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        const e = parseDer(Buffer.from(bytes));
        if (e.constructed) childrenOf(e);
      } catch (error) {
        if (!(error instanceof DerError)) throw error;
      }
    }), { numRuns: 2000 });
  });
});

describe("certificates", () => {
  test("issuer, serial and subject key identifier as openssl sees them", () => {
    const cert = new X509Certificate(readFileSync(rsa.cert));
    const id = certificateIdentity(cert.raw);
    assert.equal(id.serial.toString("hex").toUpperCase(), cert.serialNumber.replace(/^(00)+/, ""));
    assert.equal(formatName(id.issuer), "CN=rsa signer, O=netimport tests");
    assert.equal(subjectOf(cert), rsa.subject);
    const ski = execFileSync("openssl", ["x509", "-in", rsa.cert, "-noout", "-ext", "subjectKeyIdentifier"], { encoding: "utf8" });
    assert.equal(id.subjectKeyId?.toString("hex").toUpperCase(), /([0-9A-F]{2}(?::[0-9A-F]{2})+)/.exec(ski)![1]!.replaceAll(":", ""));
  });
});

describe("parseSignedData", () => {
  test("openssl smime -nocerts -noattr: one signer by issuer and serial, detached, no attributes", () => {
    const sd = parseSignedData(sign(rsa, ROOT_HASH));
    assert.equal(sd.contentType, "1.2.840.113549.1.7.1");
    assert.equal(sd.content, undefined);
    assert.equal(sd.signers.length, 1);
    const [signer] = sd.signers;
    assert.equal(formatName(signer!.issuer!), "CN=rsa signer, O=netimport tests");
    assert.equal(signer!.digestAlgorithm, "2.16.840.1.101.3.4.2.1");
    assert.equal(signer!.signatureAlgorithm, "1.2.840.113549.1.1.1");
    assert.equal(signer!.signedAttributes, undefined);
  });

  test("openssl cms with certificates and signed attributes; -keyid names the signer by key identifier", () => {
    const sd = parseSignedData(sign(rsa, ROOT_HASH, { attributes: true, certs: true, keyId: true }));
    const [signer] = sd.signers;
    assert.equal(signer!.issuer, undefined);
    assert.equal(signer!.subjectKeyId?.length, 20);
    assert.equal(signer!.signedAttributes?.contentType, "1.2.840.113549.1.7.1");
    assert.equal(signer!.signedAttributes?.messageDigest?.length, 32);
    assert.equal(signer!.signedAttributes?.signedBytes[0], 0x31);
  });

  test("not SignedData, or malformed", () => {
    assert.throws(() => parseSignedData(Buffer.from("300d06092a864886f70d010701a000", "hex")), /not SignedData/);
    assert.throws(() => parseSignedData(Buffer.from("3000", "hex")), DerError);
  });
});

describe("verifyDetachedSignature", () => {
  const content = Buffer.from(ROOT_HASH);
  const fails = (der: Buffer, certs: TrustedCertificate[], reason: string, message: RegExp, data = content) =>
    assert.throws(() => verifyDetachedSignature(der, data, certs), (e: unknown) => {
      assert.ok(e instanceof SignatureError, String(e));
      assert.equal(e.reason, reason);
      assert.match(e.message, message);
      return true;
    });

  test("RSA as systemd-repart signs (no attributes, certificate embedded)", () => {
    const result = verifyDetachedSignature(sign(rsa, ROOT_HASH, { certs: true }), content, trusted(stranger, rsa));
    assert.equal(result.signer.path, rsa.cert);
    assert.equal(result.subject, rsa.subject);
  });

  test("RSA -nocerts -noattr, ECDSA P-256, SHA-384 and SHA-512 digests", () => {
    assert.equal(verifyDetachedSignature(sign(rsa, ROOT_HASH), content, trusted(rsa)).signer.path, rsa.cert);
    assert.equal(verifyDetachedSignature(sign(ec, ROOT_HASH), content, trusted(ec)).signer.path, ec.cert);
    assert.equal(verifyDetachedSignature(sign(rsa, ROOT_HASH, { digest: "sha384" }), content, trusted(rsa)).signer.path, rsa.cert);
    assert.equal(verifyDetachedSignature(sign(ec, ROOT_HASH, { digest: "sha512" }), content, trusted(ec)).signer.path, ec.cert);
  });

  test("signed attributes: the signature over the attributes, the message digest over the content", () => {
    const der = sign(rsa, ROOT_HASH, { attributes: true });
    assert.equal(verifyDetachedSignature(der, content, trusted(rsa)).signer.path, rsa.cert);
    assert.equal(verifyDetachedSignature(sign(ec, ROOT_HASH, { attributes: true, keyId: true }), content, trusted(ec)).signer.path, ec.cert);
    // Other content: the attributes still verify, but their digest is not this content's.
    fails(der, trusted(rsa), "digest-mismatch", /signed message digest is not the sha256 of the signed content/, Buffer.from(ROOT_HASH.replace("3f", "40")));
  });

  test("other content, an unknown signer", () => {
    fails(sign(rsa, ROOT_HASH), trusted(rsa), "bad-signature", /signature by CN=rsa signer, O=netimport tests .* does not verify/, Buffer.from(ROOT_HASH.replace("3f", "40")));
    fails(sign(stranger, ROOT_HASH), trusted(rsa, ec), "unknown-signer", /signer \(issuer "CN=stranger, O=netimport tests", serial [0-9a-f]+\) is none of the trusted certificates/);
    fails(sign(stranger, ROOT_HASH, { attributes: true, keyId: true }), trusted(rsa), "unknown-signer", /subject key identifier [0-9a-f]{40}/);
    fails(sign(rsa, ROOT_HASH), [], "unknown-signer", /none of the trusted certificates/);
  });

  test("a digest algorithm the signature algorithm contradicts is refused", () => {
    const der = sign(ec, ROOT_HASH);
    const oid = Buffer.from("06082a8648ce3d040302", "hex"); // ecdsa-with-SHA256
    const at = der.indexOf(oid);
    assert.ok(at > 0, "openssl names the ECDSA signature algorithm ecdsa-with-SHA256");
    der[at + oid.length - 1] = 0x03; // ecdsa-with-SHA384, while the digest algorithm says SHA-256
    fails(der, trusted(ec), "malformed", /digest algorithm \(sha256\) and signature algorithm \(sha384\) disagree/);
  });

  test("a flipped bit in the signature value fails as a bad signature", () => {
    const der = sign(rsa, ROOT_HASH);
    der[der.length - 5]! ^= 0x01;
    fails(der, trusted(rsa), "bad-signature", /does not verify/);
  });

  test("refused: attached content, SHA-1, RSA-PSS, garbage", () => {
    fails(sign(rsa, ROOT_HASH, { attached: true }), trusted(rsa), "not-detached", /embeds its content/);
    fails(sign(rsa, ROOT_HASH, { digest: "sha1" }), trusted(rsa), "unsupported", /digest algorithm 1\.3\.14\.3\.2\.26; only SHA-256, SHA-384 and SHA-512/);
    fails(sign(rsa, ROOT_HASH, { extra: ["-keyopt", "rsa_padding_mode:pss"] }), trusted(rsa), "unsupported", /signature algorithm 1\.2\.840\.113549\.1\.1\.10/);
    fails(Buffer.from("not a signature"), trusted(rsa), "malformed", /not a valid PKCS#7 signature/);
  });

  test("damage to what is signed or names the signer is always refused; no damage crashes the reader", () => {
    const der = sign(rsa, ROOT_HASH, { attributes: true });
    const certs = trusted(rsa);
    const covered = coveredRanges(der);
    fc.assert(fc.property(fc.nat({ max: der.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
      const damaged = Buffer.from(der);
      damaged[at]! ^= xor;
      let accepted = false;
      try {
        verifyDetachedSignature(damaged, content, certs);
        accepted = true;
      } catch (error) {
        if (!(error instanceof SignatureError)) throw error;
      }
      if (accepted) assert.ok(!covered.some(([from, to]) => at >= from && at < to), `flipping byte ${at} (xor ${xor}) was accepted`);
    }), { numRuns: 400 });
  });
});

/**
 * Byte ranges of a one-signer signature that must never change unnoticed: the signer's identifier, its
 * signed attributes and its signature value. (Versions, the unused digest algorithm set and algorithm
 * parameters are not checked by PKCS7_verify either.)
 */
function coveredRanges(der: Buffer): [number, number][] {
  const sd = childrenOf(childrenOf(childrenOf(parseDer(der))[1]!)[0]!);
  const signer = childrenOf(childrenOf(sd[sd.length - 1]!)[0]!);
  const range = (e: { raw: Buffer }): [number, number] => [e.raw.byteOffset - der.byteOffset, e.raw.byteOffset - der.byteOffset + e.raw.length];
  const [, sid, , attributes, , signature] = signer;
  return [range(sid!), range(attributes!), range(signature!)];
}
