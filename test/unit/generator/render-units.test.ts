// Golden unit files: the units are the user interface, so every byte of them is reviewed here.
// Regenerate after an intended change with UPDATE_GOLDEN=1 and read the diff.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { makePlan } from "../../../generator/plan.ts";
import { renderUnits, type RenderedUnits } from "../../../generator/render-units.ts";
import { quoteExecArgument, escapeUnitNamePart, fillTemplate } from "../../../generator/unit-text.ts";
import { SCENARIOS } from "./scenarios.ts";

function show(units: RenderedUnits): string {
  const parts = units.files.map((f) => `=== ${f.dir}/${f.name}\n${f.text}\n`);
  parts.push(...units.links.map((l) => `=== ${l.dir}/${l.target}.${l.kind}/${l.unit} -> ../${l.unit}\n`));
  return parts.join("");
}

for (const scenario of SCENARIOS) {
  test(`golden units: ${scenario.name}`, () => {
    const plan = makePlan({
      cmdline: scenario.cmdline,
      cmdlinePath: "/proc/cmdline",
      inInitrd: scenario.inInitrd,
      configs: scenario.config ? [{ path: "/etc/netimport/netimport.conf", text: scenario.config }] : [],
      systemdImportGeneratorInstalled: false,
      bootUrl: () => (scenario.boot ? { url: scenario.boot, source: "StubDeviceURL" } : undefined),
    });
    assert.deepEqual(plan.log.filter((l) => l.level === "err" || l.level === "warning"), []);
    const units = renderUnits(plan.requests, {
      executable: "/usr/lib/netimport/netimport",
      inInitrd: scenario.inInitrd,
      settings: plan.settings,
      actions: plan.actions,
    });
    const actual = show(units);
    const file = new URL(`./golden/${scenario.name}.units`, import.meta.url);
    if (process.env.UPDATE_GOLDEN) writeFileSync(file, actual);
    assert.equal(actual, readFileSync(file, "utf8"));
  });
}

test("ExecStart words: plain ones bare, others quoted; specifiers and variables escaped", () => {
  assert.equal(quoteExecArgument("http://h/a.raw?x=1&y=2"), '"http://h/a.raw?x=1&y=2"');
  assert.equal(quoteExecArgument("--type=raw"), "--type=raw");
  assert.equal(quoteExecArgument("/run/machines/my image.raw"), '"/run/machines/my image.raw"');
  assert.equal(quoteExecArgument("http://h/%41$HOME"), '"http://h/%%41$$HOME"');
  assert.equal(quoteExecArgument('a"b\\c'), '"a\\"b\\\\c"');
});

test("unit name parts are escaped as unit_name_escape() does", () => {
  assert.equal(escapeUnitNamePart("root"), "root");
  assert.equal(escapeUnitNamePart("my image"), "my\\x20image");
  assert.equal(escapeUnitNamePart(".hidden-x"), "\\x2ehidden\\x2dx");
  assert.equal(escapeUnitNamePart("a/b"), "a-b");
});

test("templates: empty placeholder lines vanish, unknown placeholders are a bug", () => {
  assert.equal(fillTemplate("a\n{{X}}\nb={{Y}}", { X: "", Y: "1" }), "a\nb=1");
  assert.equal(fillTemplate("{{X}}", { X: "1\n2" }), "1\n2");
  assert.throws(() => fillTemplate("{{NOPE}}", {}), /NOPE/);
});
