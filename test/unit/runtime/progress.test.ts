import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createProgressMeter, formatBytes, formatDuration, formatProgress } from "../../../runtime/progress.ts";

const MiB = 1024 * 1024;

describe("formatProgress", () => {
  it("shows percent, bytes, rate, time left and the URL when the size is known", () => {
    assert.equal(formatProgress({ bytes: 512 * MiB, total: 1024 * MiB, elapsedMs: 4000, url: "http://m/os.raw" }),
      "http://m/os.raw: 50% 512.0 MiB of 1.0 GiB, 128.0 MiB/s, 4s left");
  });
  it("shows bytes and rate only when the size is unknown", () => {
    assert.equal(formatProgress({ bytes: 3 * MiB, total: undefined, elapsedMs: 2000, url: "u" }), "u: 3.0 MiB, 1.5 MiB/s");
  });
  it("says done at 100%", () => {
    assert.equal(formatProgress({ bytes: 100, total: 100, elapsedMs: 90_000, url: "u" }), "u: 100% 100 B of 100 B, 1 B/s, done in 1m30s");
  });
  it("survives a zero elapsed time", () => {
    assert.equal(formatProgress({ bytes: 0, total: 10, elapsedMs: 0, url: "u" }), "u: 0% 0 B of 10 B, 0 B/s");
  });
});

describe("formatBytes and formatDuration", () => {
  it("use binary units and compact durations", () => {
    assert.equal(formatBytes(1536), "1.5 KiB");
    assert.equal(formatBytes(5 * 1024 ** 4), "5.0 TiB");
    assert.equal(formatDuration(3725), "1h02m05s");
    assert.equal(formatDuration(59.6), "1m00s");
  });
});

describe("createProgressMeter", () => {
  it("writes at most one line per interval and one at the end", () => {
    let clock = 0;
    const lines: string[] = [];
    const meter = createProgressMeter({ total: 1000, intervalSeconds: 5, url: () => "u", write: (l) => lines.push(l), now: () => clock });
    for (let i = 0; i < 10; i++) {
      clock += 2000; // 2 s per 100 bytes: a line every third
      meter.add(100);
    }
    meter.end();
    assert.deepEqual(lines, [
      "u: 30% 300 B of 1000 B, 50 B/s, 14s left",
      "u: 60% 600 B of 1000 B, 50 B/s, 8s left",
      "u: 90% 900 B of 1000 B, 50 B/s, 2s left",
      "u: 100% 1000 B of 1000 B, 50 B/s, done in 20s",
    ]);
  });

  it("with interval 0 writes only the final line", () => {
    const lines: string[] = [];
    let clock = 0;
    const meter = createProgressMeter({ total: undefined, intervalSeconds: 0, url: () => "u", write: (l) => lines.push(l), now: () => (clock += 1000) });
    meter.add(10);
    meter.add(10);
    meter.end();
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^u: 20 B, /);
  });
});
