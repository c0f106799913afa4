// Markdown for the results: tables, numbers, and PASS/MISS against the project's targets.

/** One target: what was measured against what was asked for. */
export type Check = { what: string; pass: boolean };

/** A section's markdown, its targets, and the tools that failed (the run then exits non-zero). */
export type Rendered = { markdown: string; checks: Check[]; failures: string[] };

/**
 * A markdown table; numeric-looking columns are right-aligned.
 * @example table(["tool", "MB/s"], [["curl", "712"]]);
 */
export function table(headers: string[], rows: string[][]): string {
  const numeric = headers.map((_, column) =>
    rows.length > 0 && rows.every((row) => /^[-≤≥<>~×.\d\s%]*(MB|MiB|ms|s|MB\/s)?$/.test(row[column] ?? "") || row[column] === "–"));
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [
    line(headers),
    line(headers.map((_, column) => (numeric[column] ? "---:" : "---"))),
    ...rows.map((row) => line(row)),
  ].join("\n");
}

export function verdict(pass: boolean): string {
  return pass ? "PASS" : "MISS";
}

/** Fixed decimals, dropping them for big numbers: 1234 → "1234", 12.345 → "12.3", 1.2345 → "1.23". */
export function number(value: number): string {
  if (!Number.isFinite(value)) return "–";
  const magnitude = Math.abs(value);
  return value.toFixed(magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : 2);
}

export const MB = 1e6;
export const MiB = 1024 * 1024;

export function mb(bytes: number, decimals?: number): string {
  return `${decimals === undefined ? number(bytes / MB) : (bytes / MB).toFixed(decimals)} MB`;
}

export function mib(bytes: number): string {
  return `${number(bytes / MiB)} MiB`;
}

export function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : "–";
}

/** A power-of-two size as people say it: "256 MiB", "1 GiB". */
export function sizeLabel(bytes: number): string {
  const gib = bytes / (1024 * MiB);
  return gib >= 1 ? `${Number.isInteger(gib) ? gib : number(gib)} GiB` : mib(bytes);
}
