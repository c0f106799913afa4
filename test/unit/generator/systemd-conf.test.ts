// systemd's config syntax, rule by rule, as src/shared/conf-parser.c (v252) reads it.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { LogLine } from "../../../generator/log-line.ts";
import { parseConf, type ConfContent } from "../../../generator/systemd-conf.ts";

const PATH = "/etc/netimport/netimport.conf";
/** systemd's LONG_LINE_MAX: the longest line, and the longest continued line, it reads. */
const LONG_LINE_MAX = 1024 * 1024;

/** Parses with sections [A] and [B], keys K, L and M in each; returns "section.key=value@line" and the log. */
function parse(content: ConfContent) {
  const assignments: string[] = [];
  const log: LogLine[] = [];
  const complete = parseConf(PATH, content, {
    sections: ["A", "B"],
    lookup: (section, key) => (["K", "L", "M"].includes(key) ? (value, at) => assignments.push(`${section}.${key}=${value}@${at.line}`) : undefined),
  }, log);
  return { assignments, log: log.map((l) => `${l.level}: ${l.message}`), complete };
}

test("values are taken as written: no inline comments, no unquoting, no booleans", () => {
  const { assignments, log } = parse("[A]\nK=https://h/a;b\nL=\"quoted\" 'too'\nM=true\nK=a # b\nL=\\x41\n");
  assert.deepEqual(assignments, ["A.K=https://h/a;b@2", "A.L=\"quoted\" 'too'@3", "A.M=true@4", "A.K=a # b@5", "A.L=\\x41@6"]);
  assert.deepEqual(log, []);
});

test("blanks (space, tab, CR) around key and value are stripped, inner ones kept", () => {
  const { assignments } = parse("[A]\n \t K \t= \t a  b \t\r\nL=\nM =  \n");
  assert.deepEqual(assignments, ["A.K=a  b@2", "A.L=@3", "A.M=@4"]);
});

test("comment lines start with # or ; after optional blanks; other lines starting so are not comments", () => {
  const { assignments, log } = parse("# top\n[A]\n  # K=1\n\t;L=2\nK=3\n");
  assert.deepEqual(assignments, ["A.K=3@5"]);
  assert.deepEqual(log, []);
});

test("an odd number of trailing backslashes continues the line; the backslash becomes a space", () => {
  const { assignments } = parse("[A]\nK=a\\\nb\nL=x\\\\\nM=y\\\\\\\n  z\n");
  assert.deepEqual(assignments, ["A.K=a b@3", "A.L=x\\\\@4", "A.M=y\\\\   z@6"]);
});

test("comment lines inside a continuation are skipped, the continuation goes on", () => {
  const { assignments } = parse("[A]\nK=one \\\n# not part of it\n ; nor this\ntwo\n");
  assert.deepEqual(assignments, ["A.K=one  two@5"]);
});

test("a continuation at the end of the file is still applied, counted as one more line", () => {
  const { assignments } = parse("[A]\nK=a\\");
  assert.deepEqual(assignments, ["A.K=a@3"]);
});

test("a UTF-8 byte order mark at the start is dropped", () => {
  const bom = Buffer.from([0xef, 0xbb, 0xbf]);
  const { assignments, log } = parse(Buffer.concat([bom, Buffer.from("[A]\nK=é\n")]));
  assert.deepEqual(assignments, ["A.K=é@2"]);
  assert.deepEqual(log, []);
});

test("lines end at \\n, \\r, \\r\\n, \\n\\r or NUL; \\n\\n is an empty line", () => {
  const { assignments } = parse("[A]\r\nK=1\rL=2\n\rM=3\0K=4\n\nL=5");
  assert.deepEqual(assignments, ["A.K=1@2", "A.L=2@3", "A.M=3@4", "A.K=4@5", "A.L=5@7"]);
  assert.deepEqual(parse("[A]\nK=a\r\n\r\nL=b").assignments, ["A.K=a@2", "A.L=b@4"]);
});

test("a section header must end with ']': error, and the rest of the file is ignored", () => {
  const { assignments, log, complete } = parse("[A]\nK=before\n[B\nL=after\n[B]\nM=after\n");
  assert.deepEqual(assignments, ["A.K=before@2"]);
  assert.deepEqual(log, [
    `err: ${PATH}:3: Invalid section header '[B'`,
    `warning: ${PATH}:3: Failed to parse file, ignoring the rest of it.`,
  ]);
  assert.equal(complete, false);
});

test("a section name with quotes, backslashes or control characters: error, the rest is ignored", () => {
  for (const header of ['[A"]', "[A\\]", "[A\x01]", "[A']"]) {
    const { assignments, log } = parse(`[A]\nK=1\n${header}\nL=2\n`);
    assert.deepEqual(assignments, ["A.K=1@2"], header);
    assert.equal(log[0], `err: ${PATH}:3: Bad characters in section header '${header}'`, header);
  }
});

test("an assignment outside a section: warning, ignored", () => {
  const { assignments, log } = parse("K=1\n[A]\nK=2\n");
  assert.deepEqual(assignments, ["A.K=2@3"]);
  assert.deepEqual(log, [`warning: ${PATH}:1: Assignment outside of section. Ignoring.`]);
});

test("missing '=' and missing key: warning, the line is ignored, parsing goes on", () => {
  const { assignments, log, complete } = parse("[A]\nK\n = 1\nL=2\n");
  assert.deepEqual(assignments, ["A.L=2@4"]);
  assert.deepEqual(log, [
    `warning: ${PATH}:2: Missing '=', ignoring line.`,
    `warning: ${PATH}:3: Missing key name before '=', ignoring line.`,
  ]);
  assert.equal(complete, true);
});

test("a line that is not valid UTF-8: warning naming it, and, as in systemd, the end of the file", () => {
  const bad = Buffer.concat([Buffer.from("[A]\nK=1\nL=a"), Buffer.from([0xff]), Buffer.from("b\nM=3\n")]);
  const { assignments, log } = parse(bad);
  assert.deepEqual(assignments, ["A.K=1@2"]);
  assert.equal(log[0], `warning: ${PATH}:3: String is not UTF-8 clean, ignoring assignment: L=a\ufffdb`);
  // systemd's rules, stricter than a TextDecoder: overlong forms, surrogates and noncharacters.
  for (const bytes of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xef, 0xbf, 0xbe], [0xef, 0xb7, 0x90], [0xf4, 0x90, 0x80, 0x80]]) {
    assert.equal(parse(Buffer.concat([Buffer.from("[A]\nK="), Buffer.from(bytes)])).assignments.length, 0, bytes.join(","));
  }
  assert.deepEqual(parse(Buffer.from("[A]\nK=\u{1f600}\u00e9\u4e2d\n")).assignments, ["A.K=\u{1f600}\u00e9\u4e2d@2"]);
});

test("unknown sections and keys: warning, ignored; X- ones silently", () => {
  const { assignments, log } = parse("[A]\nNope=1\nX-Mine=2\n[C]\nK=3\n[X-Vendor]\nK=4\n[B]\nK=5\n");
  assert.deepEqual(assignments, ["B.K=5@9"]);
  assert.deepEqual(log, [
    `warning: ${PATH}:2: Unknown key 'Nope' in section [A], ignoring.`,
    `warning: ${PATH}:4: Unknown section 'C'. Ignoring.`,
  ]);
});

test("keys and sections are case-sensitive, and Object.prototype names are unknown keys", () => {
  const { assignments, log } = parse("[a]\nK=1\n[A]\nk=2\nconstructor=3\n__proto__=4\n");
  assert.deepEqual(assignments, []);
  assert.equal(log.length, 4);
});

test("a line of 1 MiB or more: error, the rest of the file is ignored; one byte less is read", () => {
  const fits = parse(`[A]\nK=${"x".repeat(LONG_LINE_MAX - 3)}\nL=after\n`);
  assert.deepEqual(fits.assignments.map((a) => a.slice(0, 4)), ["A.K=", "A.L="]);
  const tooLong = parse(`[A]\nK=1\nL=${"x".repeat(LONG_LINE_MAX - 2)}\nM=after\n`);
  assert.deepEqual(tooLong.assignments, ["A.K=1@2"]);
  assert.deepEqual(tooLong.log, [`err: ${PATH}:2: Line too long`, `warning: ${PATH}:2: Failed to parse file, ignoring the rest of it.`]);
  const continued = parse(`[A]\nK=${"x".repeat(LONG_LINE_MAX / 2)}\\\n${"y".repeat(LONG_LINE_MAX / 2)}\n`);
  assert.deepEqual(continued.log[0], `err: ${PATH}:3: Continuation line too long`);
});
