// Credentials the runtime would not be able to find again are reported at boot by the generator.
import { test } from "node:test";
import assert from "node:assert/strict";
import { makePlan } from "../../../generator/plan.ts";

const CONF = "/etc/netimport/netimport.conf";

function errors(cmdline: string, config = "", credential?: string): string[] {
  const plan = makePlan({
    cmdline,
    cmdlinePath: "/proc/cmdline",
    inInitrd: true,
    configs: config ? [{ path: CONF, content: config }] : [],
    ...(credential !== undefined ? { credential: { path: "/run/credentials/@system/import.pull", text: credential } } : {}),
    systemdImportGeneratorInstalled: false,
    bootUrl: () => undefined,
  });
  return plan.log.filter((l) => l.level === "err").map((l) => l.message);
}

test("URLs with credentials that the runtime will find again: nothing to report", () => {
  assert.deepEqual(errors("rd.systemd.import=::https://u:p@h/a.raw", "[Download]\nHTTPSProxy=http://pu:pp@proxy:3128\nMirror=https://t@m/\n"), []);
  assert.deepEqual(errors("", "", "::https://u:p@h/a.raw\n::https://v:q@h/b.raw\n"), []);
});

test("regression: an old password in a commented-out line makes the proxy ambiguous", () => {
  const lines = errors(
    "rd.systemd.import=::http://h/a.raw rd.systemd.import=::http://h/b.raw",
    "[Download]\n# HTTPSProxy=http://pu:old@proxy:3128\nHTTPSProxy=http://pu:new@proxy:3128\n",
  );
  assert.deepEqual(lines, [
    `http://***@proxy:3128 stands for 2 different URLs with credentials in ${CONF} (commented-out lines count too); the download of http://h/a.raw will fail: keep one.`,
  ]);
});

test("two mirrors on one host with different tokens are ambiguous too", () => {
  const lines = errors("rd.systemd.import=::http://h/a.raw", "[Download]\nMirror=https://t1@m/a/ https://t2@m/a/\n");
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^https:\/\/\*\*\*@m\/a\/ stands for 2 different URLs/);
});

test("a URL the runtime's scan cannot find as written (quotes inside it) is reported", () => {
  const lines = errors(`rd.systemd.import=raw::https://u:p@"h/a.raw"`);
  assert.deepEqual(lines, ["https://***@h/a.raw will not be found again in /proc/cmdline as the download reads it (quotes inside the URL?); the download of https://u:p@h/a.raw will fail."]);
});
