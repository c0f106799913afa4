import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { candidateUrls, resolveAgainstMirror, siblingUrls, urlFileName } from "../../../runtime/mirrors.ts";

describe("mirrors", () => {
  it("takes the file name from the URL path, ignoring the query", () => {
    assert.equal(urlFileName("http://o/a/b/os.raw.zst?x=1"), "os.raw.zst");
  });
  it("treats a mirror as a folder whether or not it ends in a slash", () => {
    assert.equal(resolveAgainstMirror("http://m/img", "os.raw"), "http://m/img/os.raw");
    assert.equal(resolveAgainstMirror("http://m/img/", "os.raw"), "http://m/img/os.raw");
    assert.equal(resolveAgainstMirror("http://m", "os.raw"), "http://m/os.raw");
  });
  it("lists the URL first, then each mirror, without duplicates", () => {
    assert.deepEqual(candidateUrls("http://o/x/os.raw", ["http://m1/", "http://m2/img", "http://o/x/"]),
      ["http://o/x/os.raw", "http://m1/os.raw", "http://m2/img/os.raw"]);
  });
  it("finds siblings (SHA256SUMS) next to the image and on mirrors", () => {
    assert.deepEqual(siblingUrls("http://o/x/os.raw", "SHA256SUMS", ["http://m1/a"]),
      ["http://o/x/SHA256SUMS", "http://m1/a/SHA256SUMS"]);
  });
});
