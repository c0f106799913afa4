import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { BLOCK, extents, MIX, writeDiskImage } from "./disk-image.ts";

const SIZE = 64 * 1024 * 1024;

test("extents cover the image exactly, 4 KiB-aligned, in about the intended mix", () => {
  const bytes = { zero: 0, random: 0, text: 0, binary: 0 };
  let total = 0;
  for (const { kind, length } of extents(SIZE)) {
    assert.equal(length % BLOCK, 0);
    bytes[kind] += length;
    total += length;
  }
  assert.equal(total, SIZE);
  for (const kind of Object.keys(MIX) as (keyof typeof MIX)[]) {
    assert.ok(Math.abs(bytes[kind] / SIZE - MIX[kind]) < 0.1, `${kind}: ${bytes[kind] / SIZE}`);
  }
});

test("the same seed writes the same sparse image; it compresses like a disk image", () => {
  const dir = mkdtempSync(join(tmpdir(), "disk-image-test-"));
  try {
    const first = join(dir, "a.raw");
    const second = join(dir, "b.raw");
    writeDiskImage(first, SIZE);
    writeDiskImage(second, SIZE);
    const a = readFileSync(first);
    assert.equal(a.length, SIZE);
    assert.equal(createHash("sha256").update(a).digest("hex"), createHash("sha256").update(readFileSync(second)).digest("hex"));
    // Zero runs are holes: clearly less is allocated than the apparent size.
    assert.ok(statSync(first).blocks * 512 < SIZE * 0.8);
    const ratio = SIZE / gzipSync(a, { level: 1 }).length;
    assert.ok(ratio > 1.8 && ratio < 5, `gzip ratio ${ratio}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
