import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { expectedHash } from "../../../runtime/checksum-file.ts";

const A = "a".repeat(64);
const B = "B".repeat(64);

describe("expectedHash", () => {
  it("reads text mode, binary mode and bare hashes, skipping other lines", () => {
    const file = `# comment\n${A}  os.raw.xz\n${B} *os.tar.gz\r\n\n./x\n`;
    assert.equal(expectedHash(file, "os.raw.xz", "SHA256SUMS", false), A);
    assert.equal(expectedHash(file, "os.tar.gz", "SHA256SUMS", false), "b".repeat(64));
    assert.equal(expectedHash(`# comment\n\n${B}\r\n`, "os.raw", "os.raw.sha256", true), "b".repeat(64));
  });
  it("strips a leading ./ from names", () => {
    assert.equal(expectedHash(`${A}  ./os.raw`, "os.raw", "SHA256SUMS", false), A);
  });
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
