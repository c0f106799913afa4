// Checksum files as published next to images: `<image>.sha256` (a bare hash, or one line
// `HASH  NAME`) and `SHA256SUMS` (`HASH  NAME` or, binary mode, `HASH *NAME`, one per line).

interface ChecksumEntry {
  hash: string;
  /** File name, or undefined for a bare hash. */
  name: string | undefined;
}

/**
 * Parses a checksum file; lines that are not checksums (comments, blanks) are skipped.
 *
 * @example parseChecksumFile("ab…ef *os.raw\n") // [{ hash: "ab…ef", name: "os.raw" }]
 */
function parseChecksumFile(text: string): ChecksumEntry[] {
  const entries: ChecksumEntry[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const match = /^([0-9a-fA-F]{64})(?:\s+\*?(.+))?$/.exec(line);
    if (!match) continue;
    entries.push({ hash: match[1]!.toLowerCase(), name: match[2]?.replace(/^\.\//, "") });
  }
  return entries;
}

/**
 * The expected hash of `fileName` according to a checksum file: its entry, or a lone bare hash
 * when `allowBare` (an `<image>.sha256` file). Throws a message naming `source` otherwise, and when
 * the file lists `fileName` more than once with different hashes: which one was meant is unknowable,
 * and taking the first would let whoever appends a line decide (the same hash twice is fine).
 *
 * @example expectedHash("ab…ef  os.raw\n", "os.raw", "http://o/SHA256SUMS", false) // "ab…ef"
 */
export function expectedHash(text: string, fileName: string, source: string, allowBare: boolean): string {
  const entries = parseChecksumFile(text);
  const hashes = [...new Set(entries.filter((e) => e.name === fileName).map((e) => e.hash))];
  if (hashes.length > 1) {
    throw new Error(`${source} lists ${fileName} with different checksums: ${hashes.join(", ")}`);
  }
  if (hashes.length === 1) return hashes[0]!;
  if (allowBare && entries.length === 1 && entries[0]!.name === undefined) return entries[0]!.hash;
  if (entries.length === 0) throw new Error(`${source} holds no SHA-256 checksum`);
  throw new Error(`${source} has no checksum for ${fileName}`);
}
