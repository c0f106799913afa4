import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { candidateUrls, urlFileName } from "../../../runtime/mirrors.ts";

describe("mirrors", () => {
  it("takes the file name from the URL path, ignoring the query", () => {
    assert.equal(urlFileName("http://o/a/b/os.raw.zst?x=1"), "os.raw.zst");
  });
  it("treats a mirror as a folder whether or not it ends in a slash", () => {
    assert.deepEqual(candidateUrls("http://o/a/os.raw", ["http://m/img", "http://m2/img/", "http://m3", "http://m4/img?q=1#f"]),
      ["http://o/a/os.raw", "http://m/img/os.raw", "http://m2/img/os.raw", "http://m3/os.raw", "http://m4/img/os.raw"]);
  });
  it("lists the URL first, then each mirror, without duplicates", () => {
    assert.deepEqual(candidateUrls("http://o/x/os.raw", ["http://m1/", "http://m2/img", "http://o/x/"]),
      ["http://o/x/os.raw", "http://m1/os.raw", "http://m2/img/os.raw"]);
  });
});
