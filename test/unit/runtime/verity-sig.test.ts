import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseVeritySig, VeritySigError } from "../../../runtime/verity-sig.ts";

const HASH = "3f2a00112233445566778899aabbccddeeff00112233445566778899aabbccb1";
const json = (object: unknown) => JSON.stringify(object);
const pad = (text: string, size = 4096) => {
  const bytes = Buffer.alloc(size);
  bytes.write(text);
  return bytes;
};

describe("parseVeritySig", () => {
  test("the JSON systemd-repart writes, NUL padded: root hash, fingerprint, signature, JSON without padding", () => {
    const text = json({ rootHash: HASH.toUpperCase(), certificateFingerprint: "AB".repeat(32), signature: Buffer.from("pkcs7").toString("base64") });
    const sig = parseVeritySig(pad(text), "partition 4");
    assert.equal(sig.rootHash, HASH);
    assert.equal(sig.certificateFingerprint, "ab".repeat(32));
    assert.equal(sig.signature.toString(), "pkcs7");
    assert.deepEqual(JSON.parse(sig.json), JSON.parse(text));
    assert.ok(!sig.json.includes("\0"));
    // Without padding (a file), and without the optional fingerprint.
    assert.equal(parseVeritySig(Buffer.from(json({ rootHash: HASH, signature: "AAAA" })), "f").certificateFingerprint, undefined);
  });

  test("refuses what systemd refuses, in one line naming the partition", () => {
    const refuses = (bytes: Buffer, message: RegExp) => assert.throws(() => parseVeritySig(bytes, "partition 4 of os.raw"), (e: unknown) => {
      assert.ok(e instanceof VeritySigError);
      assert.match(e.message, message);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
    const good = json({ rootHash: HASH, signature: "AAAA" });
    refuses(Buffer.concat([pad(good), Buffer.from("x")]), /^partition 4 of os\.raw has data after the NUL padding$/);
    refuses(pad(""), /does not hold a JSON object \(it is empty\)/);
    refuses(pad("{"), /does not hold a JSON object$/);
    refuses(pad("[1]"), /does not hold a JSON object$/);
    refuses(pad(json({ signature: "AAAA" })), /no hexadecimal "rootHash"/);
    refuses(pad(json({ rootHash: "xyz", signature: "AAAA" })), /no hexadecimal "rootHash"/);
    refuses(pad(json({ rootHash: HASH })), /no base64 "signature"/);
    refuses(pad(json({ rootHash: HASH, signature: "not base64!" })), /no base64 "signature"/);
    refuses(pad(json({ rootHash: HASH, signature: "AAAA", certificateFingerprint: 5 })), /"certificateFingerprint" that is not hexadecimal/);
    refuses(Buffer.alloc(4 * 1024 * 1024 + 1), /larger than 4 MiB/);
  });
});
