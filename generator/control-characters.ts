// Control characters in what the generator reads (command line, credential, config files, EFI
// variables) must never reach a terminal or the journal raw: an ESC sequence in a log line could
// rewrite the console, a newline could forge a second log line.

// C0 controls and DEL, as systemd's string_has_cc() counts them, plus the C1 range (U+0080–U+009F):
// a terminal takes U+009B as CSI just like ESC [.
const CONTROL = /[\x00-\x1f\x7f-\x9f]/g;

const NAMED: Record<string, string> = { "\x07": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v" };

/**
 * Escapes control characters as systemd's cescape() does: `\n`, `\t` and the other C escapes by
 * name, the rest as the bytes of their UTF-8 encoding, written `\xNN` (cescape() writes octal
 * `\033`; hex reads better and is as unambiguous). Printable text, backslashes included, stays as it
 * is, so that messages quoting unit names such as `my\x20image` stay readable.
 *
 * @example escapeControlCharacters("a\x1b[2Jb\n") // "a\\x1b[2Jb\\n"
 */
export function escapeControlCharacters(text: string): string {
  return text.replace(CONTROL, (ch) => NAMED[ch] ?? hexBytes(ch));
}

function hexBytes(ch: string): string {
  return [...Buffer.from(ch, "utf8")].map((byte) => `\\x${byte.toString(16).padStart(2, "0")}`).join("");
}

/** Whether the text has a C0 control character or DEL, which no unit file setting may hold. */
export function hasControlCharacter(text: string): boolean {
  return /[\x00-\x1f\x7f]/.test(text);
}
