import assert from "node:assert/strict";
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  findTemporaries, inspectDestination, makeReadOnly, moveIntoPlace, removePath, temporaryPath,
} from "../../../runtime/destination.ts";
import { findRecord, identityOf, recordPath, writeRecords, type ImageRecord } from "../../../runtime/image-record.ts";

let dir: string;
let n = 0;
/** A fresh folder for one test. */
const folder = () => {
  const d = join(dir, `t${n++}`);
  mkdirSync(d);
  return d;
};
before(() => { dir = mkdtempSync(join(tmpdir(), "netimport-dest-")); });
after(() => rmSync(dir, { recursive: true, force: true }));

/** Records `path` as an image netimport pulled into DEST. */
async function recordAsPulled(dest: string, path = dest): Promise<ImageRecord> {
  const record: ImageRecord = { url: "http://o/os.raw", sourceUrl: "http://o/os.raw", sha256: "a".repeat(64), etag: '"e"', ...identityOf(lstatSync(path)) };
  await writeRecords(dest, [record], temporaryPath(dest));
  return record;
}

describe("temporaries", () => {
  it("are hidden next to DEST, random, and found again by the next pull", async () => {
    const d = folder();
    const dest = join(d, "os.raw");
    assert.match(temporaryPath(dest), new RegExp(`^${d}/\\.#os\\.raw\\.[0-9a-f]{8}$`));
    assert.notEqual(temporaryPath(dest), temporaryPath(dest));
    const mine = [temporaryPath(dest), `${temporaryPath(dest)}.old`];
    for (const path of mine) writeFileSync(path, "");
    // Not ours: another image's temporaries, and look-alikes.
    for (const name of [".#os.raw2.0123abcd", ".#os.raw.0123abc", ".#os.raw.0123abcg", ".#os.raw.0123abcd.new", "os.raw"]) writeFileSync(join(d, name), "");
    assert.deepEqual((await findTemporaries(dest)).sort(), mine.sort());
  });

  it("keep within 255 bytes for the longest names, and two long names never share them", () => {
    const long = "x".repeat(255);
    const a = temporaryPath(`/run/machines/${long}`);
    const b = temporaryPath(`/run/machines/${long.slice(0, 250)}yyyyy`);
    for (const path of [a, b]) assert.ok(Buffer.byteLength(`${path.slice("/run/machines/".length)}.old`) <= 255, path);
    assert.notEqual(a.slice(0, -9), b.slice(0, -9));
    const multibyte = temporaryPath(`/m/${"é".repeat(127)}`);
    assert.ok(!multibyte.includes("\uFFFD"), "no character cut in two");
  });
});

describe("inspectDestination", () => {
  it("says absent, or ours (unchanged or not), for netimport's own images", async () => {
    const d = folder();
    const dest = join(d, "os.raw");
    assert.deepEqual(await inspectDestination(dest, "file"), { state: "absent" });
    writeFileSync(dest, "image");
    const record = await recordAsPulled(dest);
    const seen = await inspectDestination(dest, "file");
    assert.equal(seen.state, "ours");
    assert.deepEqual(seen.state === "ours" && seen.record, record);
    assert.equal(seen.state === "ours" && seen.unchanged, true);
    // Modified locally: still ours, but changed.
    writeFileSync(dest, "image, changed");
    const changed = await inspectDestination(dest, "file");
    assert.equal(changed.state === "ours" && changed.unchanged, false);
  });

  it("refuses anything netimport did not make: a folder, a file of someone else's, a symlink, the wrong kind", async () => {
    const d = folder();
    const cwd = join(d, "my-project");
    mkdirSync(cwd);
    writeFileSync(join(cwd, "precious.txt"), "data");
    await assert.rejects(inspectDestination(cwd, "file"), { name: "ForeignDestinationError" });
    await assert.rejects(inspectDestination(cwd, "directory"), /was not made by netimport \(no record of it in .*\/\.my-project\.netimport\): netimport only replaces images it pulled itself/);
    const file = join(d, "someones.raw");
    writeFileSync(file, "x");
    await assert.rejects(inspectDestination(file, "file"), /was not made by netimport/);
    const outside = join(d, "outside.raw");
    writeFileSync(outside, "x");
    const link = join(d, "link.raw");
    symlinkSync(outside, link);
    await recordAsPulled(link, outside); // even a record of the target does not make the link ours
    await assert.rejects(inspectDestination(link, "file"), /is a symbolic link/);
    const tree = join(d, "tree");
    mkdirSync(tree);
    await recordAsPulled(tree);
    await assert.rejects(inspectDestination(tree, "file"), /exists and is not a regular file/);
    // A file put where a pulled image was (another inode) is not the pulled image.
    const swapped = join(d, "swapped.raw");
    writeFileSync(swapped, "someone's");
    const record = await recordAsPulled(swapped);
    await writeRecords(swapped, [{ ...record, ino: record.ino + 1 }], temporaryPath(swapped));
    await assert.rejects(inspectDestination(swapped, "file"), /was not made by netimport/);
    assert.equal(readFileSync(join(cwd, "precious.txt"), "utf8"), "data");
  });
});

describe("records", () => {
  it("are replaced atomically and ignored when unreadable", async () => {
    const d = folder();
    const dest = join(d, "os.raw");
    writeFileSync(dest, "x");
    const record = await recordAsPulled(dest);
    assert.deepEqual(await findRecord(dest, statSync(dest)), record);
    assert.deepEqual(readdirSync(d).sort(), [".os.raw.netimport", "os.raw"]);
    writeFileSync(recordPath(dest), "{ not json");
    assert.equal(await findRecord(dest, statSync(dest)), undefined);
    assert.equal(recordPath(`/m/${"x".repeat(250)}`).length, "/m/.".length + 32 + ".netimport".length);
  });
});

describe("moving into place and removing", () => {
  it("replaces a file atomically and a tree via a short-lived hidden copy", async () => {
    const d = folder();
    const dest = join(d, "f.raw");
    writeFileSync(dest, "old");
    const temp = temporaryPath(dest);
    writeFileSync(temp, "new");
    await moveIntoPlace(temp, dest);
    assert.equal(readFileSync(dest, "utf8"), "new");

    const tree = join(d, "tree");
    mkdirSync(join(tree, "old-only"), { recursive: true });
    await makeReadOnly(tree);
    const tempTree = temporaryPath(tree);
    mkdirSync(join(tempTree, "etc"), { recursive: true });
    writeFileSync(join(tempTree, "etc", "os-release"), "ID=new\n");
    await moveIntoPlace(tempTree, tree);
    assert.deepEqual(readdirSync(tree), ["etc"]);
    assert.deepEqual(readdirSync(d).filter((name) => name.startsWith(".#")), []);
  });

  it("makes the image read-only and can still remove it", async () => {
    const d = folder();
    const file = join(d, "ro.raw");
    writeFileSync(file, "x", { mode: 0o644 });
    await makeReadOnly(file);
    assert.equal(statSync(file).mode & 0o777, 0o444);
    await removePath(file);
    await removePath(join(d, "never-existed"));
    assert.deepEqual(readdirSync(d), []);
  });

  it("never changes what a symlink points to", async () => {
    const d = folder();
    const target = join(d, "target");
    mkdirSync(target);
    writeFileSync(join(target, "keep"), "x");
    chmodSync(target, 0o755);
    utimesSync(target, new Date(0), new Date(0));
    const link = join(d, "link");
    symlinkSync(target, link);
    await removePath(link);
    assert.equal(statSync(target).mode & 0o777, 0o755, "not chmod-ed through the link");
    assert.deepEqual(readdirSync(target), ["keep"]);
    assert.deepEqual(readdirSync(d), ["target"]);
    symlinkSync(target, link);
    await assert.rejects(makeReadOnly(link), /is a symbolic link/);
    assert.equal(statSync(target).mode & 0o777, 0o755);
  });
});
