import { test } from "node:test";
import assert from "node:assert/strict";
import { keyIs, parseCmdline } from "../../../generator/proc-cmdline.ts";

/** The words of a command line, as parseCmdline() splits it (on the host, where every unprefixed key counts). */
const splitCmdline = (text: string): string[] => parseCmdline(text, false).map(({ key, value }) => (value === undefined ? key : `${key}=${value}`));

test("words split on whitespace, quotes group and are removed", () => {
  assert.deepEqual(splitCmdline(`  a  "b c"\td="e f" 'g "h"' x"y z"w\n`), ["a", "b c", "d=e f", 'g "h"', "xy zw"]);
  assert.deepEqual(splitCmdline(`a "unterminated b`), ["a", "unterminated b"]);
  assert.deepEqual(splitCmdline(`""`), [""]);
  assert.deepEqual(splitCmdline(""), []);
});

test("in the initrd only rd. keys count, prefix stripped; root= is read unprefixed", () => {
  const items = parseCmdline("rd.systemd.import=a systemd.import=b root=/dev/x rd.root=y quiet rd.flag", true);
  assert.deepEqual(items, [
    { key: "systemd.import", value: "a" },
    { key: "root", value: "/dev/x" },
    { key: "root", value: "y" },
    { key: "flag", value: undefined },
  ]);
});

test("on the host rd. keys are ignored", () => {
  assert.deepEqual(parseCmdline("rd.systemd.import=a systemd.import=b", false), [{ key: "systemd.import", value: "b" }]);
});

test("values keep later '=' signs and quoted spaces", () => {
  assert.deepEqual(parseCmdline(`rd.systemd.import="raw::http://h/a b.raw?x=1"`, true), [
    { key: "systemd.import", value: "raw::http://h/a b.raw?x=1" },
  ]);
});

test("keys compare with - and _ as the same character", () => {
  assert.ok(keyIs("systemd.import.success-action", "systemd.import.success_action"));
  assert.ok(!keyIs("systemd.imports", "systemd.import"));
});
