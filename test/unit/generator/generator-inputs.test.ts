// The generator's input edge: config files are read as bytes, and in systemd's order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LogLine } from "../../../generator/log-line.ts";
import { readGeneratorInputs } from "../../../generator/generator-inputs.ts";
import { tempDir } from "../../support/temp-dir.ts";

/** The config files readGeneratorInputs() finds under `root`. */
function readConfigFiles(root: string, log: LogLine[]) {
  return readGeneratorInputs({ NETIMPORT_ROOT: root, SYSTEMD_PROC_CMDLINE: "", SYSTEMD_IN_INITRD: "1" }, log).configs;
}

test("config files: main file, then drop-ins by name (/etc masks /usr/lib); bytes as they are", () => {
  const root = tempDir("netimport-inputs-");
  for (const dir of ["etc/netimport/netimport.conf.d", "usr/lib/netimport/netimport.conf.d"]) mkdirSync(join(root, dir), { recursive: true });
  writeFileSync(join(root, "usr/lib/netimport/netimport.conf"), "main");
  writeFileSync(join(root, "usr/lib/netimport/netimport.conf.d/20-b.conf"), "masked");
  writeFileSync(join(root, "etc/netimport/netimport.conf.d/20-b.conf"), "b");
  writeFileSync(join(root, "usr/lib/netimport/netimport.conf.d/10-a.conf"), Buffer.from([0x5b, 0xff, 0x5d]));
  writeFileSync(join(root, "etc/netimport/netimport.conf.d/ignored.txt"), "x");
  const log: LogLine[] = [];
  const files = readConfigFiles(root, log);
  assert.deepEqual(files.map((f) => f.path), ["/usr/lib/netimport/netimport.conf", "/usr/lib/netimport/netimport.conf.d/10-a.conf", "/etc/netimport/netimport.conf.d/20-b.conf"]);
  assert.deepEqual([...(files[1]!.content as Uint8Array)], [0x5b, 0xff, 0x5d]);
  assert.deepEqual(log, []);
});

test("regression: a drop-in whose name has a control character is skipped: its path would go into units", () => {
  const root = tempDir("netimport-inputs-");
  mkdirSync(join(root, "etc/netimport/netimport.conf.d"), { recursive: true });
  writeFileSync(join(root, "etc/netimport/netimport.conf.d/50-x\nExecStartPre=evil.conf"), "[Import]\nPull=::http://h/a.raw\n");
  const log: LogLine[] = [];
  assert.deepEqual(readConfigFiles(root, log), []);
  assert.equal(log.length, 1);
  assert.match(log[0]!.message, /^Ignoring drop-in \/etc\/netimport\/netimport\.conf\.d\/50-x\nExecStartPre=evil\.conf: its name has control characters\.$/);
});
