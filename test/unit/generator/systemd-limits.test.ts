// Every name an entry makes must fit systemd's and the kernel's limits, checked before rendering.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ImportRequest } from "../../../generator/import-request.ts";
import { systemdLimitViolation } from "../../../generator/systemd-limits.ts";

function request(local: string, more: Partial<ImportRequest> = {}): ImportRequest {
  return { origin: { path: "/proc/cmdline", what: "rd.systemd.import=" }, class: "machine", type: "raw", local, remote: "http://h/a", readOnly: false, verify: "no", blockdev: false, runtime: true, ...more };
}

test("unit names: 255 bytes fit, 256 do not, counted after escaping", () => {
  // netimport-pull-run-machines-<LOCAL>.raw.service: 40 bytes around LOCAL.
  assert.equal(systemdLimitViolation(request("x".repeat(215))), undefined);
  assert.match(systemdLimitViolation(request("x".repeat(216)))!, /unit name netimport-pull-run-machines-x{216}\.raw\.service 256 bytes long, over systemd's limit of 255: use a shorter LOCAL name/);
  // A space is escaped to \x20: four bytes each.
  assert.equal(systemdLimitViolation(request(" ".repeat(53))), undefined);
  assert.match(systemdLimitViolation(request(" ".repeat(54)))!, /256 bytes long/);
});

test("the attach unit, two bytes longer, counts only when the image is attached", () => {
  const local = "x".repeat(214);
  assert.equal(systemdLimitViolation(request(local)), undefined);
  assert.match(systemdLimitViolation(request(local, { blockdev: true }))!, /unit name netimport-attach-run-machines-x{214}\.raw\.service 256 bytes long/);
  assert.match(systemdLimitViolation(request(local, { root: { kind: "attach", partition: "root" } }))!, /netimport-attach-/);
  assert.equal(systemdLimitViolation(request(local, { type: "tar", root: { kind: "bind" } })), undefined);
});

test("the image file name: LOCAL.raw must fit NAME_MAX (counted in bytes)", () => {
  assert.match(systemdLimitViolation(request("é".repeat(126)))!, /the image file name é{126}\.raw would be 256 bytes long, over the limit of 255 for a file name/);
  // A tar image's name has no suffix: the file name fits, the unit name does not.
  assert.match(systemdLimitViolation(request("x".repeat(250), { type: "tar" }))!, /unit name netimport-pull-run-machines-x{250}\.service 286 bytes long/);
});
