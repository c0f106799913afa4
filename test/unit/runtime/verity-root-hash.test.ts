// Trusted certificates found as systemd finds them in verity.d, and the root hash decision: given, or
// from a signature that verifies with one of them.
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadVerityCertificates, VERITY_CERTIFICATE_DIRS } from "../../../runtime/verity-certificates.ts";
import { resolveRootHash } from "../../../runtime/verity-root-hash.ts";
import { makeSigner, sign, signatureJson, type Signer } from "./ddi-fixtures.ts";

const HASH = "3f2a00112233445566778899aabbccddeeff00112233445566778899aabbccb1";
let dir: string;
let vendor: Signer;
let local: Signer;
let stranger: Signer;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "netimport-verity-hash-"));
  vendor = makeSigner(join(dir, "keys"), "vendor");
  local = makeSigner(join(dir, "keys"), "local", "ec");
  stranger = makeSigner(join(dir, "keys"), "stranger");
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** verity.d folders: etc, run, usr (highest priority first), filled as `files` say. */
function certificateDirs(name: string, files: Record<string, Record<string, string | Signer | null>>): string[] {
  const dirs = ["etc", "run", "usr"].map((d) => join(dir, name, d, "verity.d"));
  for (const [i, d] of ["etc", "run", "usr"].entries()) {
    mkdirSync(dirs[i]!, { recursive: true });
    for (const [file, contents] of Object.entries(files[d] ?? {})) {
      const path = join(dirs[i]!, file);
      if (contents === null) symlinkSync("/dev/null", path);
      else if (typeof contents === "string") writeFileSync(path, contents);
      else copyFileSync(contents.cert, path);
    }
  }
  return dirs;
}

describe("loadVerityCertificates", () => {
  test("systemd's directories by default", () => {
    assert.deepEqual(VERITY_CERTIFICATE_DIRS, ["/etc/verity.d", "/run/verity.d", "/usr/local/lib/verity.d", "/usr/lib/verity.d"]);
  });

  test("*.crt by file name: earlier folders win, /dev/null and empty files mask, others skipped with a reason", async () => {
    const dirs = certificateDirs("conf", {
      etc: { "b.crt": local, "masked.crt": null, "empty.crt": "", ".hidden.crt": vendor, "notes.txt": "x" },
      run: { "b.crt": stranger, "c.crt": "garbage" },
      usr: { "a.crt": vendor, "masked.crt": stranger, "empty.crt": stranger },
    });
    const { trusted, skipped } = await loadVerityCertificates([...dirs, join(dir, "missing")]);
    assert.deepEqual(trusted.map((t) => t.path), [join(dirs[2]!, "a.crt"), join(dirs[0]!, "b.crt")]);
    assert.deepEqual(skipped, [`${join(dirs[1]!, "c.crt")}: not a PEM certificate`]);
  });
});

describe("resolveRootHash", () => {
  const sigFile = (name: string, json: string) => {
    const path = join(dir, name);
    writeFileSync(path, json);
    return path;
  };
  const rejects = (sources: Parameters<typeof resolveRootHash>[0], message: RegExp) =>
    assert.rejects(resolveRootHash(sources), (e: Error) => {
      assert.equal(e.name, "RootHashError", String(e));
      assert.match(e.message, message);
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    });

  test("a given hash wins; the signature file is not even read", async () => {
    assert.deepEqual(await resolveRootHash({ given: HASH.toUpperCase(), signatureFile: "/nonexistent/\0", dataName: "d" }), { rootHash: HASH, from: "given" });
  });

  test("a signature that verifies with a trusted certificate", async () => {
    const dirs = certificateDirs("good", { etc: { "local.crt": local }, usr: { "vendor.crt": vendor } });
    const file = sigFile("good.sig", signatureJson(HASH, vendor, sign(vendor, HASH)));
    const h = await resolveRootHash({ signatureFile: file, certificateDirs: dirs, dataName: "d" });
    assert.deepEqual(h, { rootHash: HASH, from: "signature", certificatePath: join(dirs[2]!, "vendor.crt"), certificateSubject: vendor.subject });
    // ECDSA, with signed attributes, NUL padding as copied from the partition.
    const ec = sigFile("ec.sig", signatureJson(HASH, local, sign(local, HASH, { attributes: true })) + "\0".repeat(100));
    assert.equal((await resolveRootHash({ signatureFile: ec, certificateDirs: dirs, dataName: "d" })).certificateSubject, local.subject);
  });

  test("no hash and no signature file", async () => {
    await rejects({ signatureFile: join(dir, "none.sig"), dataName: "/run/netimport/root.data" },
      /^\/run\/netimport\/root\.data has a verity partition but no root hash: give roothash= \(usrhash= for \/usr\) on the kernel command line, or sign it \(verity-sig partition\) with a certificate in \/etc\/verity\.d$/);
    await rejects({ dataName: "/run/netimport/usr.data" }, /usr\.data has a verity partition but no root hash/);
  });

  test("a signature by an unknown certificate names the certificates tried and the one the JSON names", async () => {
    const dirs = certificateDirs("unknown", { etc: { "vendor.crt": vendor } });
    const file = sigFile("stranger.sig", signatureJson(HASH, stranger, sign(stranger, HASH)));
    await rejects({ signatureFile: file, certificateDirs: dirs, dataName: "d" }, new RegExp(
      `^the signature of root hash ${HASH} \\(.*stranger\\.sig\\) does not verify: the signer \\(issuer "CN=stranger, O=netimport tests", serial [0-9a-f]+\\) is none of the trusted certificates; ` +
      `certificates tried: ${join(dirs[0]!, "vendor.crt")} \\(CN=vendor, O=netimport tests\\); it names the certificate with SHA-256 fingerprint ${stranger.fingerprint}, which is not among them$`));
  });

  test("a tampered rootHash, or a signature over another hash, does not verify", async () => {
    const dirs = certificateDirs("tampered", { etc: { "vendor.crt": vendor } });
    const other = HASH.replace("3f2a", "0000");
    const tampered = sigFile("tampered.sig", signatureJson(other, vendor, sign(vendor, HASH)));
    await rejects({ signatureFile: tampered, certificateDirs: dirs, dataName: "d" }, new RegExp(`^the signature of root hash ${other} .* does not verify: the signature by CN=vendor, O=netimport tests \\(.*vendor\\.crt\\) does not verify; certificates tried: .*vendor\\.crt`));
  });

  test("a signature but no certificate to check it with; a malformed signature file", async () => {
    const dirs = certificateDirs("empty", { usr: { "bad.crt": "not pem" } });
    const file = sigFile("nocert.sig", signatureJson(HASH, vendor, sign(vendor, HASH)));
    await rejects({ signatureFile: file, certificateDirs: dirs, dataName: "d" }, new RegExp(`^the root hash ${HASH} is signed \\(.*\\), but there is no certificate \\(\\*\\.crt\\) to check it with in .*; skipped .*bad\\.crt: not a PEM certificate$`));
    await rejects({ signatureFile: sigFile("bad.sig", "{}"), certificateDirs: dirs, dataName: "d" }, /the root hash signature .*bad\.sig has no hexadecimal "rootHash"/);
  });
});
