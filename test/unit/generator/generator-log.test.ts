// What the generator's log lines may show: control characters escaped, credentials redacted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { escapeControlCharacters, hasControlCharacter } from "../../../generator/control-characters.ts";
import { logText } from "../../../generator/log-line.ts";

test("control characters are escaped as cescape() names them, the rest as \\xNN bytes", () => {
  assert.equal(escapeControlCharacters("a\nb\tc\rd\x07\b\f\v"), "a\\nb\\tc\\rd\\a\\b\\f\\v");
  assert.equal(escapeControlCharacters("\x1b[2J\x00\x7f"), "\\x1b[2J\\x00\\x7f");
  assert.equal(escapeControlCharacters("\u009b31m"), "\\xc2\\x9b31m");
  assert.equal(escapeControlCharacters("plain é 中 my\\x20image"), "plain é 中 my\\x20image");
});

test("hasControlCharacter: C0 and DEL, as systemd's string_has_cc()", () => {
  assert.ok(hasControlCharacter("a\tb"));
  assert.ok(hasControlCharacter("\x7f"));
  assert.ok(!hasControlCharacter("é \\n"));
});

test("regression: a log line quoting input keeps to one line and shows no escape sequence", () => {
  const line = logText("rd.systemd.import= in /proc/cmdline: Unknown pull option, ignoring: x\n<3>forged[1]: \x1b[31mroot");
  assert.equal(line, "rd.systemd.import= in /proc/cmdline: Unknown pull option, ignoring: x\\n<3>forged[1]: \\x1b[31mroot");
  assert.ok(!/[\x00-\x1f\x7f]/.test(line));
});

test("regression: credentials in URLs never reach a log line, even with control characters in them", () => {
  assert.equal(logText("Not a valid URL, refusing: https://user:pa\x1bss@h/x y"), "Not a valid URL, refusing: https://***@h/x y");
  assert.equal(logText("'raw::http://u:p@h/a.raw' (http://u:p@h/a.raw)"), "'raw::http://***@h/a.raw' (http://***@h/a.raw)");
  assert.equal(logText("https://u:p\t@h/"), "https://***@h/");
});
