import { test } from "node:test";
import assert from "node:assert/strict";
import { parseMemorySize } from "../../../generator/memory-size.ts";

test("sizes: bytes, K, M, G, T base 1024, fractions as systemd's parse_size() takes them", () => {
  const table: [string, number][] = [
    ["1", 1], ["4096", 4096], ["4096B", 4096], ["1K", 1024], ["512M", 512 * 1024 ** 2], ["4G", 4 * 1024 ** 3],
    ["1.5G", 1.5 * 1024 ** 3], ["2T", 2 * 1024 ** 4], ["0.5K", 512], ["10.M", 10 * 1024 ** 2], ["1.5", 1], ["3 G", 3 * 1024 ** 3],
  ];
  for (const [text, bytes] of table) assert.deepEqual(parseMemorySize(text), { ok: true, value: String(bytes) }, text);
});

test("percentages of RAM from 1% to 100%", () => {
  assert.deepEqual(parseMemorySize("1%"), { ok: true, value: "1%" });
  assert.deepEqual(parseMemorySize("100%"), { ok: true, value: "100%" });
  assert.deepEqual(parseMemorySize("050%"), { ok: true, value: "50%" });
  for (const text of ["0%", "101%", "1.5%", "-5%", "%"]) assert.equal(parseMemorySize(text).ok, false, text);
});

test("anything else is refused with the rule", () => {
  for (const text of ["", "G", "4g", "4GB", "4 GiB", "-1G", "0", "0K", "1P", "1E", "1G 512M", "0x10", "1e9", " 4G", "9999999T"]) {
    const result = parseMemorySize(text);
    assert.equal(result.ok, false, text);
  }
  assert.match((parseMemorySize("lots") as { error: string }).error, /expected a size such as 512M, 4G or 1\.5G \(base 1024\), or a percentage of RAM such as 50%, got lots/);
});
