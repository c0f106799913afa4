import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  etagSidecarPath, makeReadOnly, moveIntoPlace, readStoredEtag, removePath, storeEtag, temporaryPath,
} from "../../../runtime/destination.ts";

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), "netimport-dest-")); });
after(() => rmSync(dir, { recursive: true, force: true }));

describe("destination", () => {
  it("names hidden temporaries and sidecars next to DEST", () => {
    assert.match(temporaryPath("/run/machines/os.raw"), /^\/run\/machines\/\.#os\.raw\.[0-9a-f]{8}$/);
    assert.notEqual(temporaryPath("/x/a"), temporaryPath("/x/a"));
    assert.equal(etagSidecarPath("/run/machines/os.raw"), "/run/machines/.os.raw.netimport-etag");
  });

  it("remembers the ETag only while DEST exists", async () => {
    const dest = join(dir, "e.raw");
    await storeEtag(dest, '"abc"');
    assert.equal(await readStoredEtag(dest), undefined, "no DEST, no If-None-Match");
    writeFileSync(dest, "x");
    assert.equal(await readStoredEtag(dest), '"abc"');
    await storeEtag(dest, undefined);
    assert.equal(await readStoredEtag(dest), undefined);
  });

  it("replaces a file atomically and a tree via a short-lived hidden copy", async () => {
    const dest = join(dir, "f.raw");
    writeFileSync(dest, "old");
    const temp = temporaryPath(dest);
    writeFileSync(temp, "new");
    await moveIntoPlace(temp, dest);
    assert.equal(readFileSync(dest, "utf8"), "new");

    const tree = join(dir, "tree");
    mkdirSync(join(tree, "old-only"), { recursive: true });
    await makeReadOnly(tree);
    const tempTree = temporaryPath(tree);
    mkdirSync(join(tempTree, "etc"), { recursive: true });
    writeFileSync(join(tempTree, "etc", "os-release"), "ID=new\n");
    await moveIntoPlace(tempTree, tree);
    assert.deepEqual(readdirSync(tree), ["etc"]);
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith(".#")), []);
  });

  it("makes the image read-only and can still remove it", async () => {
    const file = join(dir, "ro.raw");
    writeFileSync(file, "x", { mode: 0o644 });
    await makeReadOnly(file);
    assert.equal(statSync(file).mode & 0o777, 0o444);
    await removePath(file);
    await removePath(join(dir, "never-existed"));
    assert.deepEqual(readdirSync(dir).filter((n) => n === "ro.raw"), []);
  });
});
