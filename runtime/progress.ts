// Progress lines on stdout (the unit's journal and console): at most one every N seconds and one at
// the end, each saying how far, how fast, how long still, and from where.
import { formatBytes } from "./format-bytes.ts";

interface ProgressState {
  /** Bytes received so far. */
  bytes: number;
  /** Total bytes, when the server said. */
  total: number | undefined;
  /** Milliseconds since the transfer started. */
  elapsedMs: number;
  /** The URL (origin or mirror) currently serving. */
  url: string;
}

/** 75 → "1m15s", 3725 → "1h02m05s" */
function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h) return `${h}h${String(m).padStart(2, "0")}m${String(rest).padStart(2, "0")}s`;
  if (m) return `${m}m${String(rest).padStart(2, "0")}s`;
  return `${rest}s`;
}

/**
 * One progress line.
 *
 * @example formatProgress({ bytes: 512 << 20, total: 1 << 30, elapsedMs: 4000, url: "http://m/os.raw" })
 * // "http://m/os.raw: 50% 512 MiB of 1.0 GiB, 128 MiB/s, 4s left"
 */
function formatProgress(state: ProgressState): string {
  const rate = state.elapsedMs > 0 ? (state.bytes * 1000) / state.elapsedMs : 0;
  const parts: string[] = [];
  if (state.total !== undefined && state.total > 0) {
    const percent = Math.min(100, Math.floor((state.bytes * 100) / state.total));
    parts.push(`${percent}% ${formatBytes(state.bytes)} of ${formatBytes(state.total)}`);
  } else {
    parts.push(formatBytes(state.bytes));
  }
  parts.push(`${formatBytes(Math.round(rate))}/s`);
  if (state.total !== undefined && state.bytes >= state.total) parts.push(`done in ${formatDuration(state.elapsedMs / 1000)}`);
  else if (state.total !== undefined && rate > 0) parts.push(`${formatDuration((state.total - state.bytes) / rate)} left`);
  return `${state.url}: ${parts[0]}, ${parts.slice(1).join(", ")}`;
}

export interface ProgressOptions {
  total: number | undefined;
  /** Seconds between lines (default 5; 0: only the final line). */
  intervalSeconds?: number;
  /** The URL currently serving (it changes when a mirror takes over). */
  url: () => string;
  /** Where lines go (default stdout). */
  write?: (line: string) => void;
  now?: () => number;
}

/** Counts bytes and writes a progress line at most every interval, and one at the end. */
export interface ProgressMeter {
  add(bytes: number): void;
  /** The final line. */
  end(): void;
}

/**
 * A progress meter for one transfer.
 *
 * @example const meter = createProgressMeter({ total, url: () => source.url }); meter.add(chunk.length); … meter.end();
 */
export function createProgressMeter(options: ProgressOptions): ProgressMeter {
  const now = options.now ?? Date.now;
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const intervalMs = (options.intervalSeconds ?? 5) * 1000;
  const started = now();
  let bytes = 0;
  let lastLine = started;
  const line = (): void => write(formatProgress({ bytes, total: options.total, elapsedMs: now() - started, url: options.url() }));
  return {
    add(n) {
      bytes += n;
      if (intervalMs <= 0) return;
      const t = now();
      if (t - lastLine >= intervalMs && (options.total === undefined || bytes < options.total)) {
        lastLine = t;
        line();
      }
    },
    end: line,
  };
}
