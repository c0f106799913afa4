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
  const parts = units.files.map((f) => (f.symlink === undefined ? `=== ${f.dir}/${f.name}\n${f.text}\n` : `=== ${f.dir}/${f.name} -> ${f.symlink}\n`));
  parts.push(...units.links.map((l) => `=== ${l.dir}/${l.target}.${l.kind}/${l.unit} -> ../${l.unit}\n`));
  return parts.join("");
}

for (const scenario of SCENARIOS) {
  test(`golden units: ${scenario.name}`, () => {
    const plan = makePlan({
      cmdline: scenario.cmdline,
      cmdlinePath: "/proc/cmdline",
      inInitrd: scenario.inInitrd,
      configs: (scenario.configs ?? []).map((c) => ({ path: c.path, content: c.text })),
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

function renderOne(cmdline: string, configs: { path: string; content: string }[] = []) {
  const plan = makePlan({ cmdline, cmdlinePath: "/proc/cmdline", inInitrd: true, configs, systemdImportGeneratorInstalled: false, bootUrl: () => undefined });
  return { plan, units: renderUnits(plan.requests, { executable: "/x", inInitrd: true, settings: plan.settings, actions: plan.actions }) };
}

test("regression: no credential from a URL reaches any unit file, comment or Description", () => {
  const { units } = renderOne("rd.systemd.import=raw,root::https://deploy:s3cret@h/root.raw", [
    { path: "/etc/netimport/netimport.conf", content: "[Download]\nMirror=https://t0ken@m/\nHTTPProxy=http://pu:pw@p:1\n" },
  ]);
  const text = units.files.map((f) => f.text).join("\n");
  assert.doesNotMatch(text, /s3cret|t0ken|pu:pw/);
  assert.match(text, /^# Downloads https:\/\/\*\*\*@h\/root\.raw$/m);
  assert.match(text, /^# The root file system is the image root, downloaded from https:\/\/\*\*\*@h\/root\.raw\.$/m);
  assert.match(text, /^# Credentials in the URLs shown as \*\*\* are read at run time from \/etc\/netimport\/netimport\.conf and \/proc\/cmdline, not written here\.$/m);
});

test("an action newer than systemd 252 is written with a comment saying older ones ignore it", () => {
  const { units } = renderOne("rd.systemd.import=::http://h/a.raw rd.systemd.import.success_action=soft-reboot rd.systemd.import.failure_action=reboot");
  assert.match(units.files[0]!.text, /^# SuccessAction=soft-reboot is newer than systemd 252: a systemd that does not know it ignores it with a warning\.\nSuccessAction=soft-reboot\nFailureAction=reboot$/m);
});

test("SourcePath= keeps a % in a config file name from being read as a specifier", () => {
  const { units } = renderOne("", [{ path: "/etc/netimport/netimport.conf.d/50-%n.conf", content: "[Import]\nPull=::http://h/a.raw\n" }]);
  assert.match(units.files[0]!.text, /^SourcePath=\/etc\/netimport\/netimport\.conf\.d\/50-%%n\.conf$/m);
});
