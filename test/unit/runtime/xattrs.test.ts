import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { getXattr, setXattrs, XattrsUnsupported } from "../../../runtime/xattrs.ts";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "netimport-xattrs-"));
  execFileSync("mount", ["-t", "tmpfs", "test-xattrs", dir]);
});
after(() => {
  spawnSync("umount", ["-R", dir]);
  rmSync(dir, { recursive: true, force: true });
});

describe("xattrs", () => {
  it("set and read back, whatever the bytes (newlines, quotes, =, UTF-8)", async () => {
    const file = join(dir, "image.raw");
    writeFileSync(file, "x");
    const value = `{"url":"https://***@h/a b","etag":"\\"x\\"=1\\n"} é`;
    await setXattrs(file, { "user.netimport": value, "user.source_etag": '"abc"' });
    assert.equal(await getXattr(file, "user.netimport"), value);
    assert.equal(await getXattr(file, "user.source_etag"), '"abc"');
    assert.equal(await getXattr(file, "user.missing"), undefined);
    assert.equal(await getXattr(join(dir, "nothing-here"), "user.netimport"), undefined);
  });

  it("never follow a symlink", async () => {
    const target = join(dir, "target");
    writeFileSync(target, "x");
    const link = join(dir, "link");
    symlinkSync(target, link);
    await assert.rejects(setXattrs(link, { "user.a": "b" }));
    assert.equal(await getXattr(target, "user.a"), undefined);
  });

  it("say when the file system refuses user xattrs (ramfs)", async () => {
    const ramfs = join(dir, "ramfs");
    mkdirSync(ramfs);
    execFileSync("mount", ["-t", "ramfs", "test-ramfs", ramfs]);
    writeFileSync(join(ramfs, "f"), "x");
    await assert.rejects(setXattrs(join(ramfs, "f"), { "user.a": "b" }), XattrsUnsupported);
  });
});
