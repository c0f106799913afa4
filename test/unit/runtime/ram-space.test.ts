import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ensureSpace, explainWriteError, parseMemoryLimit, releaseEmptyTmpfs } from "../../../runtime/ram-space.ts";

const MIB = 1024 * 1024;
const exact = (bytes: number) => ({ bytes, exact: true });
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

describe("ensureSpace", () => {
  test("an image that fits leaves everything alone", async () => {
    const result = await ensureSpace(join(run, "fits"), exact(MIB), { meminfoPath });
    assert.equal(result.mountedTmpfs, false);
    assert.ok(result.available >= 3 * MIB);
    assert.deepEqual(mountsUnder(dir).map((m) => m.source), ["test-run"]);
  });

  test("an image of known size too big for the small tmpfs gets a dedicated one exactly its size (+1 MiB)", async () => {
    const dest = join(run, "machines");
    const result = await ensureSpace(dest, exact(16 * MIB), { meminfoPath });
    assert.equal(result.mountedTmpfs, true);
    assert.ok(mountsUnder(dest).some((m) => m.point === dest && m.source === "netimport"));
    const s = statfsSync(dest);
    assert.equal((s.blocks * s.bsize) / MIB, 17);
    assert.equal(result.available, s.bavail * s.bsize);
    // Writing 16 MiB there works now.
    writeFileSync(join(dest, "image.raw"), Buffer.alloc(16 * MIB, 1));
    // A second image comes: our tmpfs grows by its size instead of stacking another one.
    const again = await ensureSpace(dest, exact(32 * MIB), { meminfoPath });
    assert.equal(again.mountedTmpfs, false);
    assert.equal(mountsUnder(dest).length, 1);
    const grown = statfsSync(dest);
    assert.equal((grown.blocks * grown.bsize) / MIB, 16 + 32 + 1);
    // While another pull still writes into it (a .# temporary), its reservation is not free room.
    writeFileSync(join(dest, ".#other.raw.0123abcd"), "");
    await ensureSpace(dest, exact(8 * MIB), { meminfoPath });
    const reserved = statfsSync(dest);
    assert.equal((reserved.blocks * reserved.bsize) / MIB, 49 + 8 + 1);
  });

  test("an unknown size on a small tmpfs gets a dedicated tmpfs of what memory and the limit allow", async () => {
    const dest = join(run, "unknown");
    const result = await ensureSpace(dest, undefined, { meminfoPath });
    assert.equal(result.mountedTmpfs, true);
    assert.ok(mountsUnder(dest).some((m) => m.point === dest && m.source === "netimport"));
    const s = statfsSync(dest);
    assert.equal(Math.round((s.blocks * s.bsize) / MIB), 346, "512 MiB available - 10% of RAM - 64 MiB");
    // A lower limit bounds it: this is what stops a decompression bomb.
    const limited = join(run, "limited");
    await ensureSpace(limited, undefined, { meminfoPath, memoryLimit: { percent: 10 } });
    const l = statfsSync(limited);
    assert.equal(Math.round((l.blocks * l.bsize) / MIB), 102, "10% of 1 GiB");
    await ensureSpace(join(run, "limited-bytes"), undefined, { meminfoPath, memoryLimit: { bytes: 20 * MIB } });
    assert.equal(statfsSync(join(run, "limited-bytes")).blocks * statfsSync(join(run, "limited-bytes")).bsize, 20 * MIB);
  });

  test("an image larger than the memory limit is refused before anything is written", async () => {
    await assert.rejects(ensureSpace(join(run, "over"), exact(200 * MIB), { meminfoPath, memoryLimit: { percent: 5 } }),
      /^Error: image needs 200 MiB, more than the 51 MiB \(5% of RAM\) images may take in memory \(--image-memory-max\)$/);
    assert.equal(mountsUnder(join(run, "over")).length, 0);
  });

  test("more than memory can hold fails with the numbers", async () => {
    await assert.rejects(ensureSpace(join(run, "huge"), exact(400 * MIB), { meminfoPath, memoryLimit: { percent: 100 } }),
      new RegExp(`^Error: image needs 400 MiB, only 346 MiB of memory is available for ${run}/huge$`));
  });

  test("a non-empty folder is not mounted over", async () => {
    const dest = join(run, "busy");
    mkdirSync(dest);
    writeFileSync(join(dest, "other"), "x");
    await assert.rejects(ensureSpace(dest, exact(16 * MIB), { meminfoPath }), /is not empty, so no tmpfs is mounted on it/);
    assert.equal(mountsUnder(dest).length, 0);
  });

  test("a ramfs, which nothing bounds, gets a tmpfs for an image of unknown size", async () => {
    const ramfs = join(dir, "ramfs");
    mkdirSync(ramfs);
    execFileSync("mount", ["-t", "ramfs", "test-ramfs", ramfs]);
    const dest = join(ramfs, "machines");
    await ensureSpace(dest, undefined, { meminfoPath, memoryLimit: { bytes: 8 * MIB } });
    assert.ok(mountsUnder(dest).some((m) => m.point === dest && m.source === "netimport"));
    const busy = join(ramfs, "busy");
    mkdirSync(busy);
    writeFileSync(join(busy, "x"), "");
    await assert.rejects(ensureSpace(busy, undefined, { meminfoPath }), /is a ramfs, which no size bounds, and .*busy is not empty, so no tmpfs limits the image of unknown size/);
  });

  test("an empty netimport tmpfs is unmounted after a failure; anything else stays", async () => {
    const dest = join(run, "released");
    assert.equal((await ensureSpace(dest, exact(8 * MIB), { meminfoPath })).mountedTmpfs, true);
    writeFileSync(join(dest, "image.raw"), "x");
    assert.equal(await releaseEmptyTmpfs(dest), false, "it holds an image");
    rmSync(join(dest, "image.raw"));
    assert.equal(await releaseEmptyTmpfs(dest), true);
    assert.equal(mountsUnder(dest).length, 0);
    assert.equal(await releaseEmptyTmpfs(run), false, "not netimport's");
    assert.deepEqual(mountsUnder(dir).filter((m) => m.point === run).map((m) => m.source), ["test-run"]);
  });

  test("on a disk file system only the free space counts", async () => {
    const onDisk = statfsSync(tmpdir()).type !== 0x01021994;
    if (!onDisk) return;
    await assert.rejects(ensureSpace(join(dir, "disk"), exact(2 ** 50), { meminfoPath }), /^Error: image needs 1024 TiB, only .* is free on /);
  });
});

describe("parseMemoryLimit", () => {
  test("sizes with K, M, G, T (powers of 1024) and shares of RAM", () => {
    assert.deepEqual(parseMemoryLimit("1073741824"), { bytes: 1073741824 });
    assert.deepEqual(parseMemoryLimit("512M"), { bytes: 512 * MIB });
    assert.deepEqual(parseMemoryLimit("1.5G"), { bytes: 1.5 * 1024 * MIB });
    assert.deepEqual(parseMemoryLimit("2T"), { bytes: 2 * 1024 ** 4 });
    assert.deepEqual(parseMemoryLimit("40%"), { percent: 40 });
    for (const bad of ["", "0", "0%", "101%", "-1G", "1X", "G", "50 %", "1e3", "2t", "9".repeat(30)]) {
      assert.throws(() => parseMemoryLimit(bad), /invalid memory limit/, bad);
    }
  });
});

describe("explainWriteError", () => {
  test("says where space ran out; passes other errors through", () => {
    const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    const explained = explainWriteError(enospc, join(run, "x.raw"), 5 * MIB);
    assert.match(explained.message, /^no space left on .*\/run \(tmpfs of 4\.0 MiB, .* free\) after writing 5\.0 MiB: the image does not fit$/);
    assert.equal((explained as NodeJS.ErrnoException).code, "ENOSPC", "the code stays, for whoever tells ENOSPC apart");
    assert.equal(explained.cause, enospc);
    const other = new Error("EIO");
    assert.equal(explainWriteError(other, "/x"), other);
  });
});
