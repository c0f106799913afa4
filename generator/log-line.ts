// Log lines are collected by the pure parts of the generator and written out at the edge. What the
// generator logs and what the runtime prints pass through logText() on their way out.
import { escapeControlCharacters } from "./control-characters.ts";
import { redactSecrets } from "./redact.ts";

export type LogLevel = "err" | "warning" | "notice" | "info" | "debug";

export interface LogLine {
  level: LogLevel;
  message: string;
}

/**
 * A message as it may be shown: control characters escaped (one message stays one line and cannot
 * drive the terminal), then credentials in URLs redacted. Escaping first also catches a URL whose
 * userinfo holds a control character, which the redaction alone would not see as one.
 *
 * @example logText("bad value https://u:p@h/\x1b[2J") // "bad value https://***@h/\\x1b[2J"
 */
export function logText(message: string): string {
  return redactSecrets(escapeControlCharacters(message));
}

/** syslog priorities, as /dev/kmsg expects them in its `<N>` prefix. */
export const LOG_PRIORITY: Record<LogLevel, number> = { err: 3, warning: 4, notice: 5, info: 6, debug: 7 };
