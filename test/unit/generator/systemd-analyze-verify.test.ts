// systemd-analyze verify (the host's systemd) over the units the built generator writes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { tempDir } from "../../support/temp-dir.ts";
import { requireExecutable } from "./built-executable.ts";
import { makeEfivarfs, utf16z } from "./efi-fixtures.ts";
import { SCENARIOS } from "./scenarios.ts";

for (const scenario of SCENARIOS) {
  test(`systemd-analyze verify: ${scenario.name}`, () => {
    const out = tempDir("netimport-verify-");
    const dirs = ["normal", "early", "late"].map((d) => join(out, d));
    const root = join(out, "root");
    const env: Record<string, string> = {
      SYSTEMD_IN_INITRD: scenario.inInitrd ? "1" : "0",
      SYSTEMD_PROC_CMDLINE: scenario.cmdline,
      NETIMPORT_ROOT: root,
      NETIMPORT_EFIVARFS: scenario.boot ? makeEfivarfs({ StubDeviceURL: utf16z(scenario.boot) }) : join(out, "none"),
    };
    for (const config of scenario.configs ?? []) {
      mkdirSync(dirname(join(root, config.path)), { recursive: true });
      writeFileSync(join(root, config.path), config.text);
    }
    const gen = spawnSync(requireExecutable(), ["generator", ...dirs], { env, encoding: "utf8" });
    assert.equal(gen.status, 0, gen.stderr);

    const units = dirs.flatMap((dir) => {
      try {
        // Masks (symlinks to /dev/null) are not units to verify.
        return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile() && /\.(service|mount)$/.test(e.name)).map((e) => join(dir, e.name));
      } catch {
        return [];
      }
    });
    assert.ok(units.length > 0, "the generator wrote no units");
    // Loading initrd-root-device.target through the unit path checks our drop-in too.
    if (scenario.inInitrd && units.some((u) => u.endsWith("sysroot.mount"))) units.push("initrd-root-device.target");
    const verify = spawnSync("systemd-analyze", ["verify", "--man=no", ...units], {
      env: { ...process.env, SYSTEMD_UNIT_PATH: `${dirs.join(":")}:`, SYSTEMD_LOG_LEVEL: "notice" },
      encoding: "utf8",
    });
    // Only lines about our own units count: the host's unrelated units may have their own quirks.
    const ours = `${verify.stdout}\n${verify.stderr}`.split("\n").filter((line) => /netimport|sysroot\.mount|sysroot-usr\.mount|sysusr-usr\.mount|initrd-root-device/.test(line));
    assert.deepEqual(ours, [], ours.join("\n"));
    assert.equal(verify.status, 0, `${verify.stdout}\n${verify.stderr}`);
  });
}
