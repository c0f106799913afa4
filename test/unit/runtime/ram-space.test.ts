import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ensureSpace, explainWriteError, formatBytes, isNoSpaceError } from "../../../runtime/ram-space.ts";

const MIB = 1024 * 1024;
let dir: string;
let run: string;
let meminfoPath: string;
const mounts: string[] = [];

/** Mount points under `dir`, as /proc/self/mountinfo lists them. */
function mountsUnder(path: string): { point: string; source: string }[] {
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter(Boolean).map((line) => {
    const [left, right] = line.split(" - ");
    return { point: left!.split(" ")[4]!, source: right!.split(" ")[1]! };
  }).filter((m) => m.point.startsWith(path));
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), "netimport-ram-"));
  run = join(dir, "run");
  mkdirSync(run);
  // A small /run, as systemd mounts it in the initrd (20% of RAM), here 4 MiB.
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "test-run", run]);
  // 1 GiB of RAM, 512 MiB available: a dedicated tmpfs may use 512 - 102.4 - 64 = 345.6 MiB.
  meminfoPath = join(dir, "meminfo");
  writeFileSync(meminfoPath, "MemTotal:        1048576 kB\nMemFree:          100000 kB\nMemAvailable:     524288 kB\n");
});
after(() => {
  for (const m of mountsUnder(dir).reverse()) {
    try { execFileSync("umount", [m.point]); } catch { /* already gone */ }
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("formatBytes", () => {
  test("picks a readable unit", () => {
    assert.equal(formatBytes(12), "12 B");
    assert.equal(formatBytes(4096), "4.0 KiB");
    assert.equal(formatBytes(3.1 * 1024 * MIB), "3.1 GiB");
    assert.equal(formatBytes(512 * MIB), "512 MiB");
  });
});

describe("ensureSpace", () => {
  test("an image that fits leaves everything alone", async () => {
    const result = await ensureSpace(join(run, "fits"), MIB, { meminfoPath });
    assert.equal(result.mountedTmpfs, false);
    assert.ok(result.available >= 3 * MIB);
    assert.deepEqual(mountsUnder(dir).map((m) => m.source), ["test-run"]);
  });

  test("an image too big for the small tmpfs gets a dedicated one, sized from MemAvailable", async () => {
    const dest = join(run, "machines");
    const result = await ensureSpace(dest, 16 * MIB, { meminfoPath });
    assert.equal(result.mountedTmpfs, true);
    assert.ok(mountsUnder(dest).some((m) => m.point === dest && m.source === "netimport"));
    const s = statfsSync(dest);
    assert.equal(Math.round((s.blocks * s.bsize) / MIB), 346);
    assert.equal(result.available, s.bavail * s.bsize);
    // Writing 16 MiB there works now.
    writeFileSync(join(dest, "image.raw"), Buffer.alloc(16 * MIB, 1));
    // A second call finds our tmpfs and does not stack another one.
    const again = await ensureSpace(dest, 32 * MIB, { meminfoPath });
    assert.equal(again.mountedTmpfs, false);
    assert.equal(mountsUnder(dest).length, 1);
    // More memory became available and a bigger image comes: our tmpfs grows (used 16 MiB + 857.6 MiB).
    const roomier = join(dir, "meminfo-1g");
    writeFileSync(roomier, "MemTotal:        1048576 kB\nMemAvailable:    1048576 kB\n");
    const grown = await ensureSpace(dest, 400 * MIB, { meminfoPath: roomier });
    assert.equal(grown.mountedTmpfs, true);
    assert.equal(mountsUnder(dest).length, 1);
    const after = statfsSync(dest);
    assert.equal(Math.round((after.blocks * after.bsize) / MIB), 874);
  });

  test("an unknown size on a small tmpfs also gets the dedicated tmpfs", async () => {
    const dest = join(run, "unknown");
    const result = await ensureSpace(dest, undefined, { meminfoPath });
    assert.equal(result.mountedTmpfs, true);
    assert.ok(mountsUnder(dest).some((m) => m.point === dest && m.source === "netimport"));
  });

  test("more than memory can hold fails with the numbers", async () => {
    await assert.rejects(ensureSpace(join(run, "huge"), 3.1 * 1024 * MIB, { meminfoPath }),
      new RegExp(`^Error: image needs 3\\.1 GiB, only 346 MiB of memory is available for ${run}/huge$`));
  });

  test("a non-empty folder is not mounted over", async () => {
    const dest = join(run, "busy");
    mkdirSync(dest);
    writeFileSync(join(dest, "other"), "x");
    await assert.rejects(ensureSpace(dest, 16 * MIB, { meminfoPath }), /is not empty, so no tmpfs is mounted on it/);
    assert.equal(mountsUnder(dest).length, 0);
  });

  test("on a disk file system only the free space counts", async () => {
    const onDisk = statfsSync(tmpdir()).type !== 0x01021994;
    if (!onDisk) return;
    await assert.rejects(ensureSpace(join(dir, "disk"), 2 ** 50, { meminfoPath }), /^Error: image needs 1024 TiB, only .* is free on /);
  });
});

describe("explainWriteError", () => {
  test("says where space ran out; passes other errors through", () => {
    const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    const explained = explainWriteError(enospc, join(run, "x.raw"), 5 * MIB);
    assert.match(explained.message, /^no space left on .*\/run \(tmpfs of 4\.0 MiB, .* free\) after writing 5\.0 MiB: the image does not fit$/);
    assert.ok(isNoSpaceError(explained));
    const other = new Error("EIO");
    assert.equal(explainWriteError(other, "/x"), other);
    assert.ok(!isNoSpaceError(other));
  });
});
