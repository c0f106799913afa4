// Boots that must fail fast and say why (a `netimport: ` line on the console, then emergency mode, which
// the test initrd turns into a marker and a power-off), and one that must survive a server outage.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { assertFailedWithReason, assertRootBooted, diagnosis, openLab, type Lab } from "./lib/lab.ts";
import { served } from "./lib/images.ts";

let lab: Lab;
before(async () => { lab = await openLab("failures"); });
after(async () => { await lab?.close(); });

test("404: the reason is on the console and the boot ends in emergency mode", async () => {
  const result = await lab.bootDirect({
    name: "fail-404", suite: "trixie", timeoutSeconds: 120,
    cmdline: `rd.systemd.import=raw,root,verify=no::${lab.server.url("missing/nothing.raw.zst")}`,
  });
  assertFailedWithReason(result, /404|not found/i);
});

test("checksum mismatch (verify=sha256:<wrong>): refused, with the reason on the console", async () => {
  const wrong = "0".repeat(64);
  const result = await lab.bootDirect({
    name: "fail-checksum", suite: "trixie", timeoutSeconds: 120,
    cmdline: `rd.systemd.import=raw,root,verify=sha256:${wrong}::${lab.server.url(served.ext4Zst)}`,
  });
  assertFailedWithReason(result, /sha-?256|checksum|mismatch|does not match/i);
});

test("server killed mid-download and back 5 s later: the download resumes and the boot completes", async () => {
  lab.server.armOutage({ path: served.bench64, afterBytes: 24 * 1024 * 1024, downMs: 5000 });
  const result = await lab.bootDirect({
    name: "resume-after-outage", suite: "trixie", timeoutSeconds: 240,
    cmdline: `rd.systemd.import=raw,root,verify=no::${lab.server.url(served.bench64)}`,
  });
  await lab.server.outageDone();
  const requests = lab.server.log.filter((r) => r.path === served.bench64 && r.method === "GET");
  assert.ok(requests.length >= 2 && requests[0]?.complete === false, `the outage did not interrupt a download: ${JSON.stringify(requests)}`);
  assertRootBooted(result, "bench-64");
  const resumed = requests.slice(1).find((r) => r.complete && /^bytes=[1-9]\d*-/.test(r.range ?? ""));
  assert.ok(resumed, `no resumed (Range) request completed: ${JSON.stringify(requests)}\n${diagnosis(result)}`);
});

test("image larger than the memory it may use (512 MiB image, guest with 640 MiB): clear refusal", async () => {
  const result = await lab.bootDirect({
    name: "fail-too-large", suite: "trixie", memoryMiB: 640, timeoutSeconds: 180,
    cmdline: `rd.systemd.import=raw,root,verify=no::${lab.server.url(served.bench512)}`,
  });
  assertFailedWithReason(result, /memory|RAM|space|too (large|big)|larger/i);
  // QEMU's user network reads ahead from the host socket, so the server's byte count says little; time
  // does: downloading 512 MiB takes minutes in this guest, a refusal up front takes seconds.
  const pullStart = result.uptimeAt("NETIMPORT-E2E-MARK start netimport-pull-");
  const emergency = result.uptimeAt("NETIMPORT-E2E-EMERGENCY");
  assert.ok(pullStart !== undefined && emergency !== undefined && emergency - pullStart < 30,
    `the refusal came ${emergency !== undefined && pullStart !== undefined ? (emergency - pullStart).toFixed(1) : "?"} s after the pull started: it downloaded first?\n${diagnosis(result)}`);
});
