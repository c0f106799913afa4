// What the runtime prints goes to the journal and the console, and from there to whoever reads them:
// URLs lose their credentials, and control characters (from a URL, a file name, a server's message)
// are escaped so that no input can forge a line or move the cursor.
import { redactSecrets } from "../generator/redact.ts";

const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f", "\v": "\\v", "\x07": "\\a" };

/**
 * One line fit to print: credentials redacted, C0 controls and DEL escaped as systemd's cescape() does.
 *
 * @example safeOutputLine("HTTP 407 from http://u:p@proxy/\x1b[2J") // "HTTP 407 from http://***@proxy/\\x1b[2J"
 */
export function safeOutputLine(text: string): string {
  return redactSecrets(text).replace(/[\x00-\x1f\x7f]/g, (ch) => NAMED[ch] ?? `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
