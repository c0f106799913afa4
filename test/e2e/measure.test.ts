// Measurements, printed for the report: boot time from kernel start to switch-root with a 64 MiB and a
// 512 MiB root image, against curl alone downloading the same bytes in the same guest (a boot whose
// initrd runs curl after network-online, like netimport's pull); and the initrd size netimport adds.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { assertRootBooted, diagnosis, openLab, type Lab } from "./lib/lab.ts";
import { served } from "./lib/images.ts";
import { ensureNetimportLayer, mib } from "./lib/initrd.ts";
import { say } from "./lib/exec.ts";

let lab: Lab;
before(async () => { lab = await openLab("measure"); });
after(async () => { await lab?.close(); });

const maxOverhead = 0.10;

test("initrd size added by netimport (dist/tree as a cpio, compressed like dracut's --compress zstd: -15)", async () => {
  const { bytes } = await ensureNetimportLayer(15);
  const fast = await ensureNetimportLayer(3);
  say(`MEASURED initrd size added by netimport: ${mib(bytes)} (${bytes} bytes) at zstd -15; ${mib(fast.bytes)} at zstd -3`);
  assert.ok(bytes > 1024 * 1024 && bytes < 64 * 1024 * 1024, `implausible size ${bytes}`);
});

for (const [size, path] of [[64, served.bench64], [512, served.bench512]] as const) {
  test(`${size} MiB root image: kernel start → switch-root, netimport vs curl (overhead ≤ ${maxOverhead * 100} %)`, async () => {
    const curl = await lab.bootDirect({ name: `curl-${size}`, suite: "trixie", cmdline: `netimport_e2e.curl=${lab.server.url(path)}` });
    const curlStart = curl.uptimeAt("NETIMPORT-E2E-MARK curl-start");
    const curlEnd = curl.uptimeAt("NETIMPORT-E2E-MARK curl-end");
    const curlLine = curl.lines("NETIMPORT-E2E-CURL")[0] ?? "";
    assert.ok(curlStart !== undefined && curlEnd !== undefined && /size=\d+/.test(curlLine), `curl boot failed:\n${diagnosis(curl)}`);
    assert.match(curlLine, new RegExp(`size=${size * 1024 * 1024}\\b`), `curl did not download the whole image: ${curlLine}`);

    const pull = await lab.bootDirect({ name: `netimport-${size}`, suite: "trixie", cmdline: `rd.systemd.import=raw,root,verify=no::${lab.server.url(path)}` });
    assertRootBooted(pull, `bench-${size}`);
    const switchRoot = pull.uptimeAt("NETIMPORT-E2E-MARK switch-root");
    const pullStart = pull.uptimeAt("NETIMPORT-E2E-MARK start netimport-pull-");
    const pullEnd = pull.uptimeAt("NETIMPORT-E2E-MARK end netimport-pull-");
    assert.ok(switchRoot !== undefined && pullStart !== undefined && pullEnd !== undefined, `markers missing:\n${diagnosis(pull)}`);

    const curlSeconds = curlEnd - curlStart;
    const pullSeconds = pullEnd - pullStart;
    // Both boots are the same up to network-online, but that part jitters by seconds between boots on a
    // loaded machine; so compare from the download's start: netimport's pull + attach + mount + switch-root
    // against curl's download, relative to the whole curl boot (kernel start → curl done).
    const overhead = ((switchRoot - pullStart) - curlSeconds) / curlEnd;
    say(`MEASURED ${size} MiB: kernel start → switch-root ${switchRoot.toFixed(2)} s with netimport; ` +
      `kernel start → curl done ${curlEnd.toFixed(2)} s; download alone: netimport ${pullSeconds.toFixed(2)} s ` +
      `(${(size / pullSeconds).toFixed(0)} MiB/s) vs curl ${curlSeconds.toFixed(2)} s (${(size / curlSeconds).toFixed(0)} MiB/s); ` +
      `download start → switch-root ${(switchRoot - pullStart).toFixed(2)} s; boot overhead ${(overhead * 100).toFixed(1)} %; ${curlLine.trim()}; ${(curl.lines("NETIMPORT-E2E-CURL-TO-RUN")[0] ?? "").trim()}; ${(curl.lines("NETIMPORT-E2E-CURL-SHA256")[0] ?? "").trim()}`);
    assert.ok(overhead <= maxOverhead,
      `netimport's boot to switch-root is ${(overhead * 100).toFixed(1)} % slower than a boot that only downloads with curl ` +
      `(download start → switch-root ${(switchRoot - pullStart).toFixed(2)} s vs curl ${curlSeconds.toFixed(2)} s; curl boot ${curlEnd.toFixed(2)} s)`);
  });
}
