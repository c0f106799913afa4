// systemd's UTF-8 rules (src/basic/utf8.c), which its config parser applies to every line. They are
// stricter than a TextDecoder's: noncharacters such as U+FFFE and U+FDD0 count as invalid too.

/** utf8_encoded_expected_len(): the length a lead byte announces, 0 for a byte that cannot lead. */
function expectedLength(byte: number): number {
  if (byte < 0x80) return 1;
  if ((byte & 0xe0) === 0xc0) return 2;
  if ((byte & 0xf0) === 0xe0) return 3;
  if ((byte & 0xf8) === 0xf0) return 4;
  if ((byte & 0xfc) === 0xf8) return 5;
  if ((byte & 0xfe) === 0xfc) return 6;
  return 0;
}

function encodedLength(codePoint: number): number {
  if (codePoint < 0x80) return 1;
  if (codePoint < 0x800) return 2;
  if (codePoint < 0x10000) return 3;
  if (codePoint < 0x200000) return 4;
  if (codePoint < 0x4000000) return 5;
  return 6;
}

/** unichar_is_valid(). */
function isValidCodePoint(ch: number): boolean {
  if (ch >= 0x110000) return false;
  if ((ch & 0xfffff800) === 0xd800) return false;
  if (ch >= 0xfdd0 && ch <= 0xfdef) return false;
  return (ch & 0xfffe) !== 0xfffe;
}

/**
 * utf8_encoded_valid_unichar(): the length of the valid character at `at` in a string of byte values
 * (each char code 0–255), or -1.
 */
function validCharLength(bytes: string, at: number): number {
  const length = expectedLength(bytes.charCodeAt(at));
  if (length === 0 || at + length > bytes.length) return -1;
  if (length === 1) return 1;
  let codePoint = bytes.charCodeAt(at) & (0xff >> (length + 1));
  for (let i = 1; i < length; i++) {
    const byte = bytes.charCodeAt(at + i);
    if ((byte & 0xc0) !== 0x80) return -1;
    codePoint = codePoint * 64 + (byte & 0x3f);
  }
  if (encodedLength(codePoint) !== length || !isValidCodePoint(codePoint)) return -1;
  return length;
}

/**
 * utf8_is_valid() over a string of byte values (a `latin1` decoding of the raw bytes).
 *
 * @example isValidUtf8(Buffer.from("é").toString("latin1")) // true
 * @example isValidUtf8("\xff") // false
 */
export function isValidUtf8(bytes: string): boolean {
  for (let at = 0; at < bytes.length;) {
    const length = validCharLength(bytes, at);
    if (length < 0) return false;
    at += length;
  }
  return true;
}

/** utf8_escape_invalid(): every byte that is not part of a valid character becomes U+FFFD. */
export function escapeInvalidUtf8(bytes: string): string {
  let out = "";
  let run = 0;
  for (let at = 0; at < bytes.length;) {
    const length = validCharLength(bytes, at);
    if (length > 0) {
      at += length;
      continue;
    }
    out += `${decodeUtf8(bytes.slice(run, at))}\ufffd`;
    at += 1;
    run = at;
  }
  return out + decodeUtf8(bytes.slice(run));
}

/** The text a string of byte values encodes; only for byte strings that passed isValidUtf8(). */
export function decodeUtf8(bytes: string): string {
  return Buffer.from(bytes, "latin1").toString("utf8");
}
