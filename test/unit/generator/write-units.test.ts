// Writing is all or as much as possible: one unit that cannot be written costs no other unit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import type { RenderedUnits } from "../../../generator/render-units.ts";
import { writeUnits } from "../../../generator/write-units.ts";
import { tempDir } from "../../support/temp-dir.ts";

function dirs() {
  const out = tempDir("netimport-write-");
  return { normal: join(out, "normal"), early: join(out, "early"), late: join(out, "late") };
}

test("regression: a unit that cannot be written is reported, and everything else is still written", () => {
  const d = dirs();
  const tooLong = `netimport-pull-${"x".repeat(300)}.service`;
  const units: RenderedUnits = {
    files: [
      { dir: "normal", name: tooLong, text: "[Unit]\n" },
      { dir: "normal", name: "netimport-pull-ok.service", text: "[Unit]" },
      { dir: "early", name: "sysroot.mount", text: "[Mount]\n" },
      { dir: "early", name: "initrd-root-device.target.d/50-root-device.conf", text: "[Unit]\n" },
    ],
    links: [
      { dir: "normal", target: "initrd.target", kind: "wants", unit: tooLong },
      { dir: "normal", target: "initrd.target", kind: "wants", unit: "netimport-pull-ok.service" },
      { dir: "early", target: "initrd-root-fs.target", kind: "requires", unit: "sysroot.mount" },
    ],
  };
  const failures = writeUnits(units, d);
  assert.equal(failures.length, 2);
  assert.match(failures[0]!.message, /^Failed to write .*normal\/netimport-pull-x+\.service: ENAMETOOLONG/);
  assert.match(failures[1]!.message, /^Not linking initrd\.target\.wants\/netimport-pull-x+\.service in .*: the unit file could not be written\.$/);
  assert.ok(failures.every((f) => f.level === "err"));
  assert.deepEqual(readdirSync(d.normal, { recursive: true, encoding: "utf8" }).sort(), ["initrd.target.wants", "initrd.target.wants/netimport-pull-ok.service", "netimport-pull-ok.service"]);
  assert.equal(readlinkSync(join(d.early, "initrd-root-fs.target.requires/sysroot.mount")), "../sysroot.mount");
  assert.ok(existsSync(join(d.early, "initrd-root-device.target.d/50-root-device.conf")));
});

test("a masked unit is a symlink to /dev/null", () => {
  const d = dirs();
  assert.deepEqual(writeUnits({ files: [{ dir: "early", name: "systemd-veritysetup@root.service", text: "", symlink: "/dev/null" }], links: [] }, d), []);
  assert.equal(readlinkSync(join(d.early, "systemd-veritysetup@root.service")), "/dev/null");
});

test("the early folder is written first, and an existing file is never overwritten", () => {
  const d = dirs();
  mkdirSync(join(d.normal, "taken.service"), { recursive: true });
  const failures = writeUnits({
    files: [{ dir: "normal", name: "taken.service", text: "x" }, { dir: "early", name: "sysroot.mount", text: "y" }],
    links: [],
  }, d);
  assert.equal(failures.length, 1);
  assert.match(failures[0]!.message, /taken\.service: EEXIST/);
  assert.ok(existsSync(join(d.early, "sysroot.mount")));
  assert.deepEqual(writeUnits({ files: [], links: [] }, dirs()), []);
});
