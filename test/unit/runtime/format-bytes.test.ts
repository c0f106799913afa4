import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatBytes } from "../../../runtime/format-bytes.ts";

const MiB = 1024 * 1024;

describe("formatBytes", () => {
  test("base 1024, one decimal below 10 of a unit, whole numbers from 10", () => {
    assert.equal(formatBytes(0), "0 B");
    assert.equal(formatBytes(12), "12 B");
    assert.equal(formatBytes(1023), "1023 B");
    assert.equal(formatBytes(1024), "1.0 KiB");
    assert.equal(formatBytes(1536), "1.5 KiB");
    assert.equal(formatBytes(4096), "4.0 KiB");
    assert.equal(formatBytes(3.1 * 1024 * MiB), "3.1 GiB");
    assert.equal(formatBytes(512 * MiB), "512 MiB");
    assert.equal(formatBytes(5 * 1024 ** 4), "5.0 TiB");
    assert.equal(formatBytes(2 ** 50), "1024 TiB");
  });
  test("no 10.0 or 1024 of a unit from rounding", () => {
    assert.equal(formatBytes(9.96 * MiB), "10 MiB");
    assert.equal(formatBytes(9.94 * MiB), "9.9 MiB");
    assert.equal(formatBytes(MiB - 100), "1.0 MiB");
    assert.equal(formatBytes(MiB - 1024), "1023 KiB");
  });
});
