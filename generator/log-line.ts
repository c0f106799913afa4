// Log lines are collected by the pure parts of the generator and written out at the edge.

export type LogLevel = "err" | "warning" | "notice" | "info" | "debug";

export interface LogLine {
  level: LogLevel;
  message: string;
}

/** syslog priorities, as /dev/kmsg expects them in its `<N>` prefix. */
export const LOG_PRIORITY: Record<LogLevel, number> = { err: 3, warning: 4, notice: 5, info: 6, debug: 7 };
