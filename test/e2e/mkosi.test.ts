// The mkosi example (test/e2e/mkosi-example/) must be accepted by trixie's mkosi 25.3.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ensureChroot, inChroot } from "./lib/chroot.ts";
import { distTree, e2eDir, repoRoot } from "./lib/paths.ts";
import { say } from "./lib/exec.ts";

test("mkosi 25.3 (trixie) accepts the example configuration: mkosi summary", async () => {
  assert.ok(existsSync(join(distTree, "usr/lib/netimport/netimport")), "dist/tree is missing: run `npm run build` first");
  const chroot = await ensureChroot("trixie");
  const example = join(e2eDir, "mkosi-example");
  const summary = inChroot(chroot, `cd ${example} && mkosi --version && mkosi summary`, {}, [repoRoot]);
  say(`mkosi summary: ${summary.split("\n").filter((line) => /^mkosi |Output Format|Release:|Make Initrd/.test(line)).map((l) => l.trim()).join("; ")}`);
  assert.match(summary, /^mkosi 25\.3/);
  assert.match(summary, /Output Format:\s+uki\n/);
  assert.match(summary, /Make Initrd:\s+yes\n/);
  assert.ok(/Extra Trees:/.test(summary) && summary.includes(` ${repoRoot}/dist/tree\n`), "ExtraTrees= does not point at dist/tree");
  assert.match(summary, /rd\.systemd\.import=raw,root,verify=signature,bootorigin::image\.raw\.xz/);
});
