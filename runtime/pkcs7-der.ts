// A small reader for DER, the ASN.1 encoding of PKCS#7 signatures and X.509 certificates: enough to walk
// a SignedData structure and a certificate's fields without a CMS library (node:crypto has none). It reads
// definite lengths only, as DER requires; BER's indefinite lengths (streamed S/MIME) are refused clearly.
// Every element keeps its exact encoded bytes, because signatures are checked over encodings, not values.

/** A DER input that does not follow the encoding rules; the message says where. */
export class DerError extends Error {
  override name = "DerError";
}

const CLASS_UNIVERSAL = 0;
export const CLASS_CONTEXT = 2;

/** Universal tag numbers used by the PKCS#7 and X.509 readers. */
export const TAG = {
  BOOLEAN: 1, INTEGER: 2, BIT_STRING: 3, OCTET_STRING: 4, NULL: 5, OID: 6,
  UTF8_STRING: 12, SEQUENCE: 16, SET: 17, PRINTABLE_STRING: 19, T61_STRING: 20, IA5_STRING: 22,
  UTC_TIME: 23, GENERALIZED_TIME: 24, UNIVERSAL_STRING: 28, BMP_STRING: 30,
} as const;

/** One element (tag, length, value). */
export interface Der {
  tagClass: number;
  constructed: boolean;
  tagNumber: number;
  /** The whole encoding: identifier, length and contents. */
  raw: Buffer;
  /** The contents octets only. */
  value: Buffer;
}

/**
 * Reads the element starting at `offset` of `input`; returns it and the offset just past it.
 *
 * ```ts
 * const { element, next } = readElement(Buffer.from("020101", "hex"), 0); // INTEGER 1, next = 3
 * ```
 */
function readElement(input: Buffer, offset: number): { element: Der; next: number } {
  let at = offset;
  const byte = (what: string): number => {
    if (at >= input.length) throw new DerError(`truncated ${what} at byte ${at}`);
    return input[at++]!;
  };
  const identifier = byte("identifier");
  const tagClass = identifier >> 6;
  const constructed = (identifier & 0x20) !== 0;
  let tagNumber = identifier & 0x1f;
  if (tagNumber === 0x1f) {
    // High tag numbers: base 128, most significant group first.
    tagNumber = 0;
    for (let b = byte("tag"); ; b = byte("tag")) {
      if (tagNumber > 0xffffff) throw new DerError(`tag number too large at byte ${offset}`);
      tagNumber = tagNumber * 128 + (b & 0x7f);
      if ((b & 0x80) === 0) break;
    }
  }
  const first = byte("length");
  let length: number;
  if (first < 0x80) length = first;
  else if (first === 0x80) throw new DerError(`indefinite length at byte ${offset}: BER, not DER (sign with -outform DER, without -stream)`);
  else {
    const count = first & 0x7f;
    if (count > 4) throw new DerError(`length of ${count} bytes at byte ${offset} is too large`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + byte("length");
  }
  if (at + length > input.length) throw new DerError(`element at byte ${offset} claims ${length} bytes, only ${input.length - at} remain`);
  const element: Der = {
    tagClass, constructed, tagNumber,
    raw: input.subarray(offset, at + length),
    value: input.subarray(at, at + length),
  };
  return { element, next: at + length };
}

/** Parses `input` as exactly one element; trailing bytes are an error. */
export function parseDer(input: Buffer): Der {
  const { element, next } = readElement(input, 0);
  if (next !== input.length) throw new DerError(`${input.length - next} trailing bytes after the element`);
  return element;
}

/** The elements inside a constructed element, in order. */
export function childrenOf(element: Der): Der[] {
  if (!element.constructed) throw new DerError("expected a constructed element");
  const children: Der[] = [];
  for (let at = 0; at < element.value.length;) {
    const { element: child, next } = readElement(element.value, at);
    children.push(child);
    at = next;
  }
  return children;
}

/** True when `element` has the given universal tag (or a context tag with `tagClass`). */
export function isTag(element: Der | undefined, tagNumber: number, tagClass = CLASS_UNIVERSAL): boolean {
  return element !== undefined && element.tagClass === tagClass && element.tagNumber === tagNumber;
}

/** Returns `element` when it has the expected tag, else throws naming `what`. */
function expectTag(element: Der | undefined, tagNumber: number, what: string, tagClass = CLASS_UNIVERSAL): Der {
  if (element === undefined || !isTag(element, tagNumber, tagClass)) {
    const found = element ? `tag ${element.tagClass === CLASS_CONTEXT ? `[${element.tagNumber}]` : element.tagNumber}` : "nothing";
    throw new DerError(`${what}: expected ${tagClass === CLASS_CONTEXT ? `[${tagNumber}]` : `tag ${tagNumber}`}, found ${found}`);
  }
  return element;
}

/** The children of a SEQUENCE (or SET), checking the tag. */
export function sequence(element: Der | undefined, what: string, tagNumber: number = TAG.SEQUENCE): Der[] {
  return childrenOf(expectTag(element, tagNumber, what));
}

/**
 * An OBJECT IDENTIFIER in dotted form.
 *
 * ```ts
 * oidOf(parseDer(Buffer.from("06092a864886f70d010702", "hex"))); // "1.2.840.113549.1.7.2"
 * ```
 */
export function oidOf(element: Der | undefined, what = "object identifier"): string {
  const bytes = expectTag(element, TAG.OID, what).value;
  if (bytes.length === 0) throw new DerError(`${what}: empty object identifier`);
  const arcs: number[] = [];
  let value = 0;
  for (const [i, b] of bytes.entries()) {
    if (value > 2 ** 45) throw new DerError(`${what}: object identifier arc too large`);
    value = value * 128 + (b & 0x7f);
    if (b & 0x80) {
      if (i === bytes.length - 1) throw new DerError(`${what}: truncated object identifier`);
      continue;
    }
    if (arcs.length === 0) {
      const first = value < 40 ? 0 : value < 80 ? 1 : 2;
      arcs.push(first, value - first * 40);
    } else arcs.push(value);
    value = 0;
  }
  return arcs.join(".");
}

/** A small non-negative INTEGER (a version number). */
export function smallIntegerOf(element: Der | undefined, what: string): number {
  const bytes = expectTag(element, TAG.INTEGER, what).value;
  if (bytes.length === 0 || bytes.length > 4 || (bytes[0]! & 0x80) !== 0) throw new DerError(`${what}: not a small non-negative integer`);
  return bytes.reduce((n, b) => n * 256 + b, 0);
}

/**
 * An INTEGER's magnitude without leading zero bytes, for comparing serial numbers however they were
 * padded.
 */
export function integerBytesOf(element: Der | undefined, what: string): Buffer {
  const bytes = expectTag(element, TAG.INTEGER, what).value;
  if (bytes.length === 0) throw new DerError(`${what}: empty integer`);
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  return bytes.subarray(start);
}

/** The contents of an OCTET STRING. */
export function octetsOf(element: Der | undefined, what: string): Buffer {
  const e = expectTag(element, TAG.OCTET_STRING, what);
  if (e.constructed) throw new DerError(`${what}: constructed OCTET STRING (BER, not DER)`);
  return e.value;
}
