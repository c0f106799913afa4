// Sizes as people read them, in the progress lines and in the messages about space and memory.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/**
 * Base 1024, at most three digits' precision: one decimal below 10 of a unit, whole numbers from 10
 * (a size that rounds to 1024 of a unit is shown in the next one).
 *
 * @example formatBytes(12) // "12 B"
 * @example formatBytes(1536) // "1.5 KiB"
 * @example formatBytes(512 * 1024 ** 2) // "512 MiB"
 */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (unit < UNITS.length - 1 && (value >= 1024 || (unit > 0 && Math.round(value) >= 1024))) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${value} B`;
  return `${value < 9.95 ? value.toFixed(1) : Math.round(value)} ${UNITS[unit]}`;
}
