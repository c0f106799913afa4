import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { expectedHash, parseChecksumFile } from "../../../runtime/checksum-file.ts";

const A = "a".repeat(64);
const B = "B".repeat(64);

describe("parseChecksumFile", () => {
  it("reads text mode, binary mode and bare hashes, skipping other lines", () => {
    assert.deepEqual(parseChecksumFile(`# comment\n${A}  os.raw.xz\n${B} *os.tar.gz\r\n\n${A}\n./x\n`), [
      { hash: A, name: "os.raw.xz" },
      { hash: "b".repeat(64), name: "os.tar.gz" },
      { hash: A, name: undefined },
    ]);
  });
  it("strips a leading ./ from names", () => {
    assert.deepEqual(parseChecksumFile(`${A}  ./os.raw`), [{ hash: A, name: "os.raw" }]);
  });
});

describe("expectedHash", () => {
  it("finds the image's entry", () => {
    assert.equal(expectedHash(`${B}  other.raw\n${A} *os.raw\n`, "os.raw", "SHA256SUMS", false), A);
  });
  it("accepts a bare hash only where allowed", () => {
    assert.equal(expectedHash(`${A}\n`, "os.raw", "os.raw.sha256", true), A);
    assert.throws(() => expectedHash(`${A}\n`, "os.raw", "http://o/SHA256SUMS", false), /http:\/\/o\/SHA256SUMS has no checksum for os.raw/);
  });
  it("refuses an image listed twice with different hashes, naming both; the same hash twice is fine", () => {
    assert.throws(() => expectedHash(`${A}  os.raw\n${B}  other.raw\n${B} *./os.raw\n`, "os.raw", "http://o/SHA256SUMS", false),
      { message: `http://o/SHA256SUMS lists os.raw with different checksums: ${A}, ${"b".repeat(64)}` });
    assert.equal(expectedHash(`${A}  os.raw\n${A.toUpperCase()} *os.raw\n`, "os.raw", "http://o/SHA256SUMS", false), A);
  });
  it("requires the entry for the image", () => {
    assert.throws(() => expectedHash(`${A}  other.raw\n`, "os.raw", "SHA256SUMS", false), /SHA256SUMS has no checksum for os.raw/);
    assert.throws(() => expectedHash("garbage\n", "os.raw", "x.sha256", true), /x.sha256 holds no SHA-256 checksum/);
  });
});
