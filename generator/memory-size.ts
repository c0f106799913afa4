// `[Download] ImageMemoryMax=`: how much memory the runtime may give an image, as a size or a share
// of RAM. Parsed here so that a typo is reported at boot by the generator, with the file and line,
// instead of failing the download; the runtime gets one normalised form.

/** Base 1024, as systemd's parse_size(…, 1024) reads them. */
const FACTORS: Record<string, number> = { "": 1, B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

export type MemorySizeResult = { ok: true; value: string } | { ok: false; error: string };

/**
 * A size in bytes with an optional K, M, G or T suffix (base 1024; a fraction is allowed, as
 * systemd's parse_size() allows it: `1.5G`), or a percentage of RAM from 1% to 100%. Returns the
 * runtime's form: the byte count as an integer, or `N%`. Unlike parse_size(), sums such as
 * `1G 512M` and the P and E suffixes are not accepted: no initrd has that much memory to give.
 *
 * @example parseMemorySize("1.5G") // { ok: true, value: "1610612736" }
 * @example parseMemorySize("50%")  // { ok: true, value: "50%" }
 */
export function parseMemorySize(text: string): MemorySizeResult {
  const percent = /^([0-9]+)%$/.exec(text);
  if (percent) {
    const n = Number(percent[1]);
    if (n < 1 || n > 100) return { ok: false, error: `a percentage of RAM must be from 1% to 100%, got ${text}` };
    return { ok: true, value: `${n}%` };
  }
  const size = /^([0-9]+)(?:\.([0-9]*))?[ \t\n\r]*([BKMGT]?)$/.exec(text);
  if (!size) return { ok: false, error: `expected a size such as 512M, 4G or 1.5G (base 1024), or a percentage of RAM such as 50%, got ${text}` };
  const factor = FACTORS[size[3]!]!;
  // Whole and fractional part apart, as parse_size() adds them: exact for every whole number of bytes.
  const whole = BigInt(size[1]!) * BigInt(factor);
  const fraction = size[2] ? Math.floor(Number(`0.${size[2]}`) * factor) : 0;
  const bytes = whole + BigInt(fraction);
  if (bytes < 1n) return { ok: false, error: `the size must be at least one byte, got ${text}` };
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, error: `the size is too large, got ${text}` };
  return { ok: true, value: bytes.toString() };
}
