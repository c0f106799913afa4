import assert from "node:assert/strict";
import { test } from "node:test";
import { GiB, MiB } from "./images.ts";
import { median } from "./measure.ts";
import { renderPull, type Measurement, type PullData } from "./pull-bench.ts";
import { table } from "./report.ts";
import { renderRss } from "./rss-bench.ts";

const measured = (seconds: number[], peakRss: number[] = []): Measurement => ({ seconds, peakRss, apparent: GiB, allocated: GiB / 2 });

function pullData(results: Record<string, Measurement>): PullData {
  return {
    imageSize: GiB, compressedSizes: { raw: GiB }, sourceAllocated: GiB / 2,
    systemdPullDecodes: { raw: true, gz: true, zst: false, xz: true, bz2: true }, results,
  };
}

test("median of odd and even counts", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test("table right-aligns numeric columns only", () => {
  const lines = table(["tool", "MB/s"], [["curl", "712"], ["netimport", "650"]]).split("\n");
  assert.equal(lines[1], "| --- | ---: |");
  assert.equal(lines[2], "| curl | 712 |");
});

test("pull targets: ratios of medians, no systemd-pull target where it cannot decode", () => {
  const { checks, failures, markdown } = renderPull(pullData({
    "netimport/raw": measured([2, 2, 9]), // median 2 s
    "curl/raw": measured([1.9, 2, 2]), // ≥ 0.9× curl: PASS
    "systemd-pull/raw": measured([4, 4, 4]), // 2× systemd-pull: PASS
    "netimport/zst": measured([4]),
    "curl/zst": measured([1]), // 0.25× curl: MISS
    "netimport/bz2": { seconds: [], peakRss: [], error: "netimport bz2: exited with 1: boom" },
    "systemd-pull/bz2": measured([10]),
  }));
  assert.deepEqual(checks, [
    { what: "pull raw: netimport vs curl", pass: true },
    { what: "pull raw: netimport vs systemd-pull", pass: true },
    { what: "pull zst: netimport vs curl", pass: false },
  ]);
  assert.deepEqual(failures, ["netimport bz2: exited with 1: boom"]);
  assert.match(markdown, /\| `\.raw\.zst` \|.*\| unsupported \|/);
  assert.match(markdown, /\| `\.raw\.bz2` \|.*\| FAILED \|/);
});

test("peak RSS: under the target and flat between 256 MiB and 2 GiB", () => {
  const { checks } = renderRss({
    results: {
      [`${256 * MiB}/netimport/raw`]: { peakRss: 100 * MiB },
      [`${2 * GiB}/netimport/raw`]: { peakRss: 110 * MiB },
      [`${256 * MiB}/netimport/zst`]: { peakRss: 120 * MiB },
      [`${2 * GiB}/netimport/zst`]: { peakRss: 150 * MiB },
    },
  });
  assert.deepEqual(checks, [
    { what: "peak RSS netimport raw", pass: true },
    { what: "peak RSS flat netimport raw", pass: true },
    { what: "peak RSS netimport zst", pass: true },
    { what: "peak RSS flat netimport zst", pass: false },
  ]);
});
