import assert from "node:assert/strict";
import { test } from "node:test";
import { GiB, MiB } from "./images.ts";
import { median } from "./measure.ts";
import { comparisons, renderPull, type GroupData, type PullData, type Sample, type Tool, type ToolResult } from "./pull-bench.ts";
import { table } from "./report.ts";
import { renderRss } from "./rss-bench.ts";

const sample = (seconds: number, cpuSeconds = seconds, treePeakRss = 100 * MiB): Sample =>
  ({ seconds, cpuSeconds, maxRss: treePeakRss, treePeakRss });
const measured = (...samples: Sample[]): ToolResult => ({ samples, apparent: GiB, allocated: GiB / 2 });

function group(id: string, results: Partial<Record<Tool, ToolResult>>): GroupData {
  const [kind, format] = id.split("/") as [GroupData["kind"], GroupData["format"]];
  const tools = Object.keys(results) as Tool[];
  return { id, kind, format, tools, orders: [], results, measuredAt: "2026-01-01T00:00:00.000Z" };
}

function pullData(...groups: GroupData[]): PullData {
  return {
    imageSize: GiB, compressedSizes: { raw: GiB }, sourceAllocated: GiB / 2, lbzip2: true,
    systemdPullDecodes: { raw: true, gz: true, zst: false, xz: true, bz2: true },
    groups: Object.fromEntries(groups.map((entry) => [entry.id, entry])),
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

test("targets per comparison: curl speed and CPU on raw and zst only, systemd-pull by format", () => {
  const targetsOf = (kind: GroupData["kind"], format: GroupData["format"], tools: Tool[]) =>
    comparisons({ kind, format, tools }).map(({ section, ours, reference, metrics }) =>
      `${section} ${ours}/${reference}: ${metrics.map(({ metric, target }) => `${metric}${target ? `${target.at === "least" ? "≥" : "≤"}${target.value}` : "?"}`).join(" ")}`);
  assert.deepEqual(targetsOf("plain", "raw", ["netimport", "curl", "systemd-pull"]), [
    "curl netimport/curl: speed≥0.9 cpu≤1.5",
    "systemd-pull netimport/systemd-pull: speed≥1.5 cpu?",
  ]);
  assert.deepEqual(targetsOf("plain", "zst", ["netimport", "curl"]), ["curl netimport/curl: speed≥0.9 cpu≤1.5"]);
  assert.deepEqual(targetsOf("plain", "gz", ["netimport", "curl", "systemd-pull"]), [
    "curl netimport/curl: speed? cpu?",
    "systemd-pull netimport/systemd-pull: speed≥1.5 cpu?",
  ]);
  assert.deepEqual(targetsOf("plain", "bz2", ["netimport", "curl", "curl-lbzip2", "systemd-pull"]), [
    "curl netimport/curl: speed? cpu?",
    "curl netimport/curl-lbzip2: speed? cpu?",
    "systemd-pull netimport/systemd-pull: speed≥1.2 cpu?",
  ]);
  assert.deepEqual(targetsOf("plain", "xz", ["netimport", "systemd-pull"]), ["systemd-pull netimport/systemd-pull: speed≥1.2 cpu?"]);
  assert.deepEqual(targetsOf("verify", "zst", ["netimport-sha256", "netimport-checksum", "curl-sha256"]), [
    "verify netimport-sha256/curl-sha256: speed≥1 cpu?",
    "verify netimport-checksum/curl-sha256: speed≥1 cpu?",
  ]);
});

test("pull verdicts: medians of the per-run paired ratios", () => {
  const { checks, failures, markdown } = renderPull(pullData(
    group("plain/raw", {
      // Per run: curl/netimport speed 1.0, 0.5, 1.0 → median 1.0 (≥ 0.9 PASS), though netimport's
      // median wall (2 s) against curl's (2 s) alone would say the same; CPU 1.0, 2.0, 2.0 → 2.0 (MISS).
      netimport: measured(sample(2, 2), sample(4, 4), sample(1, 2)),
      curl: measured(sample(2, 2), sample(2, 2), sample(1, 1)),
      "systemd-pull": measured(sample(4), sample(8), sample(1.4)), // 2.0, 2.0, 1.4 → 2.0 ≥ 1.5 PASS
    }),
    group("plain/bz2", {
      netimport: { samples: [], error: "netimport bz2: exited with 1: boom" },
      curl: measured(sample(10)),
      "systemd-pull": measured(sample(10)),
    }),
    group("verify/raw", {
      "netimport-sha256": measured(sample(1.1), sample(1.1)), // 1.0/1.1: MISS
      "netimport-checksum": measured(sample(0.9), sample(0.9)), // PASS
      "curl-sha256": measured(sample(1), sample(1)),
    }),
  ));
  assert.deepEqual(checks, [
    { what: "pull raw: netimport vs curl, speed", pass: true },
    { what: "pull raw: netimport vs curl, CPU", pass: false },
    { what: "pull raw: netimport-sha256 vs curl-sha256, speed", pass: false },
    { what: "pull raw: netimport-checksum vs curl-sha256, speed", pass: true },
    { what: "pull raw: netimport vs systemd-pull, speed", pass: true },
  ]);
  assert.deepEqual(failures, ["netimport bz2: exited with 1: boom"]);
  assert.match(markdown, /\| `\.raw` \| netimport `--verify=no` \| 3 \| 2\.00 \(1\.00–4\.00\) \| 2\.00 \(2\.00–4\.00\) \| 100 MiB \| speed 1\.00× \(0\.50–1\.00\); CPU 2\.00× \(1\.00–2\.00\) \| speed ≥ 0\.9×; CPU ≤ 1\.5× \| PASS; MISS \|/);
  assert.match(markdown, /\| `\.raw\.bz2` \| netimport `--verify=no` \| 0 \| FAILED \|/);
  assert.match(markdown, /\| `\.raw` \| `systemd-pull raw --verify=no` \| 3 \|/);
});

test("peak RSS: under 128 MiB and flat (2 GiB / 256 MiB ≤ 1.1×), 1 GiB from the pull runs", () => {
  const { checks, markdown } = renderRss({
    results: {
      [`${256 * MiB}/netimport/raw`]: { peakRss: 100 * MiB, maxRss: 90 * MiB },
      [`${2 * GiB}/netimport/raw`]: { peakRss: 105 * MiB, maxRss: 90 * MiB },
      [`${256 * MiB}/netimport/zst`]: { peakRss: 100 * MiB },
      [`${2 * GiB}/netimport/zst`]: { peakRss: 120 * MiB },
      [`${256 * MiB}/netimport/bz2`]: { peakRss: 120 * MiB },
      [`${2 * GiB}/netimport/bz2`]: { peakRss: 130 * MiB },
    },
  }, pullData(group("plain/raw", { netimport: measured(sample(1, 1, 110 * MiB), sample(1, 1, 126 * MiB)) })));
  assert.deepEqual(checks, [
    { what: "peak RSS netimport raw ≤ 128 MiB", pass: true },
    { what: "peak RSS flat netimport raw", pass: true },
    { what: "peak RSS netimport zst ≤ 128 MiB", pass: true },
    { what: "peak RSS flat netimport zst", pass: false },
    { what: "peak RSS netimport bz2 ≤ 128 MiB", pass: false },
    { what: "peak RSS flat netimport bz2", pass: true },
  ]);
  assert.match(markdown, /\| `raw` \| 100 MiB \(90\.0 MiB\) \| 126 MiB \| 105 MiB \(90\.0 MiB\) \| PASS \| 1\.05× \| PASS \| 0\.83× \|/);
});
