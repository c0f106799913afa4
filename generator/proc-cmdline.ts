// The kernel command line, split and filtered as systemd's proc_cmdline_parse() does with
// PROC_CMDLINE_RD_STRICT|PROC_CMDLINE_STRIP_RD_PREFIX.

/** One `key[=value]` word of the kernel command line; value is undefined for a bare `key`. */
export interface CmdlineItem {
  key: string;
  value: string | undefined;
}

/**
 * Splits a command line into words as systemd's extract_first_word() does with
 * EXTRACT_UNQUOTE|EXTRACT_RELAX: whitespace separates words, single or double quotes group
 * (and are removed) anywhere in a word, and an unterminated quote runs to the end.
 *
 * @example splitCmdline(`a "b c" d="e f"`) // ["a", "b c", "d=e f"]
 */
function splitCmdline(text: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: string | undefined;
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else word += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/**
 * The items that concern this stage of the boot: in the initrd only `rd.`-prefixed keys (prefix
 * stripped), on the host only unprefixed ones, as systemd's PROC_CMDLINE_RD_STRICT does.
 *
 * @example parseCmdline("rd.systemd.import=a root=/x", true) // [{ key: "systemd.import", value: "a" }]
 */
export function parseCmdline(text: string, inInitrd: boolean): CmdlineItem[] {
  const items: CmdlineItem[] = [];
  for (const word of splitCmdline(text)) {
    const eq = word.indexOf("=");
    let key = eq < 0 ? word : word.slice(0, eq);
    const value = eq < 0 ? undefined : word.slice(eq + 1);
    const isRd = key.startsWith("rd.");
    if (isRd !== inInitrd) {
      // `root=` and friends have no rd. form: the initrd reads them unprefixed, as systemd does.
      if (!(inInitrd && ROOT_KEYS.has(key))) continue;
    }
    if (isRd) key = key.slice(3);
    items.push({ key, value });
  }
  return items;
}

/**
 * Keys read in the initrd without an `rd.` prefix (like fstab-generator's `root=`, and the dm-verity
 * hashes fstab-generator and systemd-veritysetup-generator read unprefixed).
 */
const ROOT_KEYS = new Set(["root", "rootflags", "rootfstype", "roothash", "usrhash"]);

/** Compares command line keys as systemd does: `-` and `_` are the same character. */
export function keyIs(key: string, expected: string): boolean {
  return key.replaceAll("-", "_") === expected.replaceAll("-", "_");
}
