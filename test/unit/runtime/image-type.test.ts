import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { inferImageType } from "../../../runtime/image-type.ts";

describe("inferImageType", () => {
  it("recognises tar suffixes, compressed or not", () => {
    for (const suffix of [".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.zst", ".tar.bz2", ".TAR.GZ"]) {
      assert.equal(inferImageType(`http://o/root${suffix}`), "tar", suffix);
    }
  });
  it("takes anything else as raw, and ignores the query", () => {
    for (const url of ["http://o/root.raw", "http://o/root.raw.xz", "http://o/root.img.zst", "http://o/tar", "http://o/root.raw?x=.tar"]) {
      assert.equal(inferImageType(url), "raw", url);
    }
  });
});
