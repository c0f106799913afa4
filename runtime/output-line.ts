// What the runtime prints goes to the journal and the console, and from there to whoever reads them:
// URLs lose their credentials, and control characters (from a URL, a file name, a server's message)
// are escaped so that no input can forge a line or move the cursor.
import { escapeControlCharacters } from "../generator/control-characters.ts";
import { redactSecrets } from "../generator/redact.ts";

/**
 * One line fit to print: credentials redacted, control characters escaped as the generator's log does.
 *
 * @example safeOutputLine("HTTP 407 from http://u:p@proxy/\x1b[2J") // "HTTP 407 from http://***@proxy/\\x1b[2J"
 */
export function safeOutputLine(text: string): string {
  return escapeControlCharacters(redactSecrets(text));
}
