import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createProgressMeter } from "../../../runtime/progress.ts";

const MiB = 1024 * 1024;

/** The final line of a meter that saw `bytes` of `total` in `elapsedMs`. */
function finalLine(bytes: number, total: number | undefined, elapsedMs: number, url = "u"): string {
  const lines: string[] = [];
  let clock = 0;
  const meter = createProgressMeter({ total, intervalSeconds: 0, url: () => url, write: (l) => lines.push(l), now: () => clock });
  meter.add(bytes);
  clock = elapsedMs;
  meter.end();
  assert.equal(lines.length, 1);
  return lines[0]!;
}

describe("progress lines", () => {
  it("show percent, bytes, rate, time left and the URL when the size is known", () => {
    assert.equal(finalLine(512 * MiB, 1024 * MiB, 4000, "http://m/os.raw"), "http://m/os.raw: 50% 512 MiB of 1.0 GiB, 128 MiB/s, 4s left");
  });
  it("show bytes and rate only when the size is unknown", () => {
    assert.equal(finalLine(3 * MiB, undefined, 2000), "u: 3.0 MiB, 1.5 MiB/s");
  });
  it("say done at 100%", () => {
    assert.equal(finalLine(100, 100, 90_000), "u: 100% 100 B of 100 B, 1 B/s, done in 1m30s");
  });
  it("survive a zero elapsed time", () => {
    assert.equal(finalLine(0, 10, 0), "u: 0% 0 B of 10 B, 0 B/s");
  });
  it("use binary units (format-bytes.ts) and compact durations", () => {
    assert.equal(finalLine(1536, 3072, 1000), "u: 50% 1.5 KiB of 3.0 KiB, 1.5 KiB/s, 1s left");
    assert.equal(finalLine(5 * 1024 ** 4, 10 * 1024 ** 4, 3725_000), "u: 50% 5.0 TiB of 10 TiB, 1.4 GiB/s, 1h02m05s left");
    assert.equal(finalLine(100, 200, 59_600), "u: 50% 100 B of 200 B, 2 B/s, 1m00s left");
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
