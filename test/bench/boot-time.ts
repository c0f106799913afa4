// Boot-time benchmark (npm run bench:boot): kernel start → switch-root with a 64 MiB and a 512 MiB root
// image downloaded by netimport, against curl alone downloading the same bytes in the same guest (a
// boot whose initrd runs curl after network-online, as netimport's pull does); and the initrd size
// netimport adds. Reported, never asserted: timings belong in benchmarks, not tests.
import { assertRootBooted, diagnosis, openLab } from "../e2e/lib/lab.ts";
import { served } from "../e2e/lib/images.ts";
import { ensureNetimportLayer, mib } from "../e2e/lib/initrd.ts";
import { say } from "../e2e/lib/exec.ts";

const TARGET_OVERHEAD = 0.10;

async function main(): Promise<void> {
  const { bytes } = await ensureNetimportLayer(15);
  const fast = await ensureNetimportLayer(3);
  const rows: string[] = [
    `initrd size added by netimport (dist/tree as a cpio): ${mib(bytes)} at zstd -15 (dracut's --compress zstd), ${mib(fast.bytes)} at zstd -3`,
  ];
  const lab = await openLab("measure");
  try {
    for (const [size, path] of [[64, served.bench64], [512, served.bench512]] as const) {
      const curl = await lab.bootDirect({ name: `curl-${size}`, suite: "trixie", cmdline: `netimport_e2e.curl=${lab.server.url(path)}` });
      const curlStart = curl.uptimeAt("NETIMPORT-E2E-MARK curl-start");
      const curlEnd = curl.uptimeAt("NETIMPORT-E2E-MARK curl-end");
      if (curlStart === undefined || curlEnd === undefined) throw new Error(`curl boot failed:\n${diagnosis(curl)}`);

      const pull = await lab.bootDirect({ name: `netimport-${size}`, suite: "trixie", cmdline: `rd.systemd.import=raw,root,verify=no::${lab.server.url(path)}` });
      assertRootBooted(pull, `bench-${size}`);
      const switchRoot = pull.uptimeAt("NETIMPORT-E2E-MARK switch-root");
      const pullStart = pull.uptimeAt("NETIMPORT-E2E-MARK start netimport-pull-");
      const pullEnd = pull.uptimeAt("NETIMPORT-E2E-MARK end netimport-pull-");
      if (switchRoot === undefined || pullStart === undefined || pullEnd === undefined) throw new Error(`markers missing:\n${diagnosis(pull)}`);

      const curlSeconds = curlEnd - curlStart;
      const pullSeconds = pullEnd - pullStart;
      // Both boots are the same up to network-online, but that part jitters by seconds between boots on a
      // loaded machine; so compare from the download's start: netimport's pull + attach + mount +
      // switch-root against curl's download, relative to the whole curl boot (kernel start → curl done).
      const overhead = ((switchRoot - pullStart) - curlSeconds) / curlEnd;
      rows.push(
        `${size} MiB: kernel → switch-root ${switchRoot.toFixed(1)} s with netimport, kernel → curl done ${curlEnd.toFixed(1)} s; ` +
        `download: netimport ${pullSeconds.toFixed(1)} s (${(size / pullSeconds).toFixed(0)} MiB/s), curl ${curlSeconds.toFixed(1)} s ` +
        `(${(size / curlSeconds).toFixed(0)} MiB/s); overhead ${(overhead * 100).toFixed(0)} % ` +
        `(target ≤ ${TARGET_OVERHEAD * 100} %: ${overhead <= TARGET_OVERHEAD ? "PASS" : "MISS"}); ${(curl.lines("NETIMPORT-E2E-CURL-SHA256")[0] ?? "").trim()}`,
      );
    }
  } finally {
    await lab.close();
  }
  say("Boot-time benchmark (QEMU TCG guest, trixie initrd):");
  for (const row of rows) say(`  ${row}`);
}

await main();
