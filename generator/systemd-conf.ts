// systemd's own config file syntax, read exactly as config_parse() and parse_line() in
// src/shared/conf-parser.c (v252) read it, so that a netimport.conf means what the same text means in
// any systemd .conf file. The rules, each one on purpose:
// - Lines end at \n, \r, \r\n, \n\r or NUL (read_line()); a line of 1 MiB or more stops the file.
// - A line whose first non-blank character is # or ; is a comment, even in the middle of a
//   continuation, where it is skipped and the continuation goes on with the line after it.
// - A line ending in an odd number of backslashes continues on the next line; that backslash
//   becomes a space.
// - A UTF-8 byte order mark is dropped from the first line that starts with one.
// - Blanks (" \t\n\r") around key and value are stripped; nothing else is done to a value: no inline
//   comments (`a=b;c` is "b;c"), no unquoting, no booleans.
// - `[Section]` must end with "]" and hold no quotes, backslashes or control characters; otherwise
//   systemd logs an error and stops reading the file: what came before stays applied.
// - A line that is not valid UTF-8 is logged and, as in systemd, ends the file too.
// - Unknown sections and keys are logged and ignored; those starting with "X-" silently.
// Log lines name the file and line as systemd's log_syntax() does: `FILE:LINE: message`.
import type { LogLine } from "./log-line.ts";
import { decodeUtf8, escapeInvalidUtf8, isValidUtf8 } from "./systemd-utf8.ts";

/** LONG_LINE_MAX: the longest line, and the longest continued line, systemd reads. */
const LONG_LINE_MAX = 1024 * 1024;

const WHITESPACE = " \t\n\r";
const COMMENTS = "#;";
/** The UTF-8 byte order mark as a string of byte values. */
const BOM = "\xef\xbb\xbf";

/** Where an assignment was written: for log lines, and for the origin of the values it sets. */
export interface ConfLocation {
  path: string;
  line: number;
  section: string;
  key: string;
}

/** Applies one value; it may log (with the location) and ignore it. */
export type ConfValueParser = (value: string, at: ConfLocation) => void;

export interface ConfSchema {
  sections: readonly string[];
  /** systemd's ConfigItemLookup: the parser of a key, or undefined for an unknown key. */
  lookup: (section: string, key: string) => ConfValueParser | undefined;
}

/** A file's content: bytes as read, or text (encoded as UTF-8). */
export type ConfContent = string | Uint8Array;

/**
 * Reads one config file, calling the schema's parser for each assignment in order; syntax problems
 * go to `log`. Returns false when systemd would have stopped reading the file early.
 *
 * @example parseConf("/etc/x.conf", "[A]\nB=c ; d\n", schema, log) // calls B's parser with "c ; d"
 */
export function parseConf(path: string, content: ConfContent, schema: ConfSchema, log: LogLine[]): boolean {
  // One char per byte: line ends, blanks and "=" are ASCII, UTF-8 is checked per line as systemd does.
  const buffer = typeof content === "string" ? Buffer.from(content, "utf8") : Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  const bytes = buffer.toString("latin1");
  const state: ParserState = { path, schema, log, section: undefined, sectionIgnored: false };
  const syntax = (level: LogLine["level"], line: number, message: string): void => {
    log.push({ level, message: `${path}:${line}: ${message}` });
  };
  const stop = (line: number): false => {
    syntax("warning", line, "Failed to parse file, ignoring the rest of it.");
    return false;
  };

  let line = 0;
  let bomSeen = false;
  let continuation: string | undefined;
  for (const read of readLines(bytes)) {
    if (read === undefined) {
      syntax("err", line, "Line too long");
      return stop(line);
    }
    line++;
    // Checked before the byte order mark is dropped, as systemd checks it.
    if (isCommentLine(read)) continue;

    let text = read;
    if (!bomSeen && read.startsWith(BOM)) {
      text = read.slice(BOM.length);
      bomSeen = true;
    }
    if (continuation !== undefined && continuation.length + text.length > LONG_LINE_MAX) {
      syntax("err", line, "Continuation line too long");
      return stop(line);
    }
    const logical = continuation === undefined ? text : continuation + text;
    // Only the new part needs scanning: the part before ended in a backslash turned into a space.
    if (endsEscaped(text)) {
      continuation = `${logical.slice(0, -1)} `;
      continue;
    }
    continuation = undefined;
    if (!parseLine(state, line, logical)) return stop(line);
  }
  if (continuation !== undefined && !parseLine(state, ++line, continuation)) return stop(line);
  return true;
}

interface ParserState {
  path: string;
  schema: ConfSchema;
  log: LogLine[];
  section: string | undefined;
  /** The last section header named a section we skip: its assignments are ignored silently. */
  sectionIgnored: boolean;
}

/**
 * read_line(): one line at a time without its end-of-line marker; undefined for a line of
 * LONG_LINE_MAX bytes or more, after which nothing more is read. An end of line is a run of \n, \r
 * and NUL in which no kind repeats, and a NUL ends the run.
 */
function* readLines(bytes: string): Generator<string | undefined> {
  let at = 0;
  while (at < bytes.length) {
    const start = at;
    while (at < bytes.length && !isEndOfLine(bytes.charCodeAt(at))) at++;
    if (at - start >= LONG_LINE_MAX) {
      yield undefined;
      return;
    }
    const text = bytes.slice(start, at);
    let seen = 0;
    while (at < bytes.length && isEndOfLine(bytes.charCodeAt(at))) {
      const kind = bytes.charCodeAt(at) === 0 ? 1 : bytes.charCodeAt(at) === 10 ? 2 : 4;
      if (seen & 1 || seen & kind) break;
      seen |= kind;
      at++;
    }
    yield text;
  }
}

function isEndOfLine(code: number): boolean {
  return code === 10 || code === 13 || code === 0;
}

function isCommentLine(line: string): boolean {
  const first = skipWhitespace(line, 0);
  return first < line.length && COMMENTS.includes(line[first]!);
}

function skipWhitespace(text: string, from: number): number {
  let at = from;
  while (at < text.length && WHITESPACE.includes(text[at]!)) at++;
  return at;
}

/** strstrip(): blanks off both ends. */
function strip(text: string): string {
  const start = skipWhitespace(text, 0);
  let end = text.length;
  while (end > start && WHITESPACE.includes(text[end - 1]!)) end--;
  return text.slice(start, end);
}

/** An odd number of backslashes at the end: the last one escapes the line break. */
function endsEscaped(text: string): boolean {
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    if (escaped) escaped = false;
    else if (text.charCodeAt(i) === 92) escaped = true;
  }
  return escaped;
}

/** string_is_safe(): no control characters, quotes, backslashes or DEL. */
function isSafeSectionName(name: string): boolean {
  return !/[\x01-\x1f"'\\\x7f]/.test(name);
}

/** parse_line(): one logical line. Returns false where systemd returns an error and stops. */
function parseLine(state: ParserState, line: number, logical: string): boolean {
  const syntax = (level: LogLine["level"], message: string): void => {
    state.log.push({ level, message: `${state.path}:${line}: ${message}` });
  };
  const l = strip(logical);
  if (l === "") return true;
  if (!isValidUtf8(l)) {
    syntax("warning", `String is not UTF-8 clean, ignoring assignment: ${escapeInvalidUtf8(l)}`);
    return false;
  }
  if (l.startsWith("[")) {
    const header = decodeUtf8(l);
    if (!l.endsWith("]")) {
      syntax("err", `Invalid section header '${header}'`);
      return false;
    }
    const name = header.slice(1, -1);
    if (!isSafeSectionName(name)) {
      syntax("err", `Bad characters in section header '${header}'`);
      return false;
    }
    if (state.schema.sections.includes(name)) {
      state.section = name;
      state.sectionIgnored = false;
    } else {
      if (!name.startsWith("X-")) syntax("warning", `Unknown section '${name}'. Ignoring.`);
      state.section = undefined;
      state.sectionIgnored = true;
    }
    return true;
  }
  if (state.section === undefined) {
    if (!state.sectionIgnored) syntax("warning", "Assignment outside of section. Ignoring.");
    return true;
  }
  const eq = l.indexOf("=");
  if (eq < 0) {
    syntax("warning", "Missing '=', ignoring line.");
    return true;
  }
  if (eq === 0) {
    syntax("warning", "Missing key name before '=', ignoring line.");
    return true;
  }
  const key = decodeUtf8(strip(l.slice(0, eq)));
  const value = decodeUtf8(strip(l.slice(eq + 1)));
  const parser = state.schema.lookup(state.section, key);
  if (parser) parser(value, { path: state.path, line, section: state.section, key });
  else if (!key.startsWith("X-")) syntax("warning", `Unknown key '${key}' in section [${state.section}], ignoring.`);
  return true;
}
