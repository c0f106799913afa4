import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { createHttpClient, type HttpClient } from "../../../runtime/http-client.ts";
import { fetchSmallFile } from "../../../runtime/http-source.ts";
import { DEFAULT_KEYRINGS, findKeyring } from "../../../runtime/signature.ts";
import { checkImageHash, expectImageHash, parseVerifyMode, type SmallFileFetcher } from "../../../runtime/verify.ts";
import { startFixtureServer, type FixtureServer } from "../../support/http-fixture-server.ts";
import { createGpgFixture, type GpgFixture } from "./gpg-fixture.ts";

const IMAGE = Buffer.from("pretend this is a disk image\n");
const HASH = createHash("sha256").update(IMAGE).digest("hex");
const OTHER = "0".repeat(64);

let dir: string;
let server: FixtureServer;
let client: HttpClient;
let gpg: GpgFixture;
let fetch: SmallFileFetcher;
let url: string;

before(async () => {
  gpg = createGpgFixture();
  dir = mkdtempSync(join(tmpdir(), "netimport-verify-"));
  server = await startFixtureServer({ root: dir });
  client = createHttpClient({ idleTimeoutMs: 5000 });
  fetch = (u) => fetchSmallFile(u, { client, retries: 0 });
  url = `${server.url}/os.raw`;
});
beforeEach(() => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
});
after(async () => {
  await client.close();
  await server.close();
  gpg.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function put(name: string, data: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

describe("parseVerifyMode", () => {
  it("knows the four modes", () => {
    assert.deepEqual(parseVerifyMode("no"), { kind: "no" });
    assert.deepEqual(parseVerifyMode("signature"), { kind: "signature" });
    assert.deepEqual(parseVerifyMode(`sha256:${"AB".repeat(32)}`), { kind: "pinned", hash: "ab".repeat(32) });
    assert.throws(() => parseVerifyMode("sha256:abc"), /invalid --verify=sha256:abc/);
    assert.throws(() => parseVerifyMode("yes"), /invalid --verify=yes/);
  });
});

describe("expectImageHash", () => {
  it("no: expects nothing and fetches nothing", async () => {
    server.log.length = 0;
    assert.equal(await expectImageHash({ kind: "no" }, url, { fetch }), undefined);
    assert.equal(server.log.length, 0);
  });

  it("checksum: prefers <URL>.sha256 (bare hash)", async () => {
    put("os.raw.sha256", `${HASH}\n`);
    put("SHA256SUMS", `${OTHER}  os.raw\n`);
    assert.deepEqual(await expectImageHash({ kind: "checksum" }, url, { fetch }), { hash: HASH, source: `${url}.sha256` });
  });

  it("checksum: falls back to SHA256SUMS (binary-mode entry)", async () => {
    put("SHA256SUMS", `${OTHER}  other.raw\n${HASH} *os.raw\n`);
    assert.equal((await expectImageHash({ kind: "checksum" }, url, { fetch }))?.hash, HASH);
  });

  it("checksum: fails when no checksum file exists, naming what was tried", async () => {
    await assert.rejects(expectImageHash({ kind: "checksum" }, url, { fetch }),
      { message: `no checksum file for ${url} (tried ${url}.sha256, ${server.url}/SHA256SUMS)` });
  });

  it("checksum: fails when SHA256SUMS lacks the image", async () => {
    put("SHA256SUMS", `${OTHER}  other.raw\n`);
    await assert.rejects(expectImageHash({ kind: "checksum" }, url, { fetch }), /SHA256SUMS has no checksum for os.raw/);
  });

  it("signature: good binary signature over SHA256SUMS", async () => {
    const sums = put("SHA256SUMS", `${HASH}  os.raw\n`);
    gpg.sign(sums, join(dir, "SHA256SUMS.gpg"));
    const expected = await expectImageHash({ kind: "signature" }, url, { fetch, keyring: gpg.keyring });
    assert.equal(expected?.hash, HASH);
  });

  it("signature: good armored signature over <URL>.sha256 with an armored keyring", async () => {
    const sums = put("os.raw.sha256", `${HASH}  os.raw\n`);
    gpg.sign(sums, join(dir, "os.raw.sha256.asc"), true);
    const expected = await expectImageHash({ kind: "signature" }, url, { fetch, keyring: gpg.armoredKeyring });
    assert.equal(expected?.source, `${url}.sha256`);
  });

  it("signature: a tampered checksum file fails", async () => {
    const sums = put("SHA256SUMS", `${OTHER}  os.raw\n`);
    gpg.sign(sums, join(dir, "SHA256SUMS.gpg"));
    put("SHA256SUMS", `${HASH}  os.raw\n`);
    await assert.rejects(expectImageHash({ kind: "signature" }, url, { fetch, keyring: gpg.keyring }),
      new RegExp(`^Error: bad signature ${server.url}/SHA256SUMS.gpg \\(key [0-9A-F]{16}\\)`));
  });

  it("signature: a corrupted signature fails", async () => {
    const sums = put("SHA256SUMS", `${HASH}  os.raw\n`);
    const sig = join(dir, "SHA256SUMS.gpg");
    gpg.sign(sums, sig);
    const bytes = readFileSync(sig);
    bytes[bytes.length - 5]! ^= 0xff;
    writeFileSync(sig, bytes);
    await assert.rejects(expectImageHash({ kind: "signature" }, url, { fetch, keyring: gpg.keyring }), /signature/);
  });

  it("signature: a key not in the keyring fails", async () => {
    const sums = put("SHA256SUMS", `${HASH}  os.raw\n`);
    gpg.signWithUnknownKey(sums, join(dir, "SHA256SUMS.gpg"));
    await assert.rejects(expectImageHash({ kind: "signature" }, url, { fetch, keyring: gpg.keyring }),
      new RegExp(`is made by key [0-9A-F]{16}, which is not in keyring ${gpg.keyring}`));
  });

  it("signature: a missing signature fails before anything else", async () => {
    put("SHA256SUMS", `${HASH}  os.raw\n`);
    await assert.rejects(expectImageHash({ kind: "signature" }, url, { fetch, keyring: gpg.keyring }),
      /^Error: no signed checksum file for .*SHA256SUMS\.gpg, .*SHA256SUMS\.asc\)$/);
  });

  it("signature: without a keyring it fails naming the paths looked at", async () => {
    await assert.rejects(expectImageHash({ kind: "signature" }, url, { fetch, defaultKeyrings: ["/nonexistent/a.pgp"] }),
      { message: "no keyring to verify signatures with (looked for /nonexistent/a.pgp)" });
  });

  it("checksum: refuses a SHA256SUMS that lists the image twice with different hashes", async () => {
    put("SHA256SUMS", `${HASH}  os.raw\n${OTHER} *os.raw\n`);
    await assert.rejects(expectImageHash({ kind: "checksum" }, url, { fetch }),
      { message: `${server.url}/SHA256SUMS lists os.raw with different checksums: ${HASH}, ${OTHER}` });
  });

  it("pinned: no fetch", async () => {
    server.log.length = 0;
    assert.deepEqual(await expectImageHash({ kind: "pinned", hash: HASH }, url, { fetch }), { hash: HASH, source: "--verify=sha256:" });
    assert.equal(server.log.length, 0);
  });
});

describe("expectImageHash: where the checksum files are, as systemd-pull finds them", () => {
  /** The fixture server's fetcher, recording every URL asked for. */
  const recording = () => {
    const asked: string[] = [];
    const recorder: SmallFileFetcher = (u) => { asked.push(u); return fetch(u); };
    return { asked, fetch: recorder };
  };

  it("<name>.sha256 replaces the last path component; the image URL's query and fragment are dropped", async () => {
    put("os.raw", IMAGE); // what a checksum URL still carrying the query would fetch
    put("os.raw.sha256", `${HASH}  os.raw\n`);
    for (const imageUrl of [`${url}?token=abc`, `${url}#part`, `${url}?token=abc&x=/y#part`]) {
      const { asked, fetch: recorder } = recording();
      assert.deepEqual(await expectImageHash({ kind: "checksum" }, imageUrl, { fetch: recorder }), { hash: HASH, source: `${url}.sha256` }, imageUrl);
      assert.deepEqual(asked, [`${url}.sha256`]);
    }
  });

  it("SHA256SUMS and the signatures sit next to the image too, without the query", async () => {
    mkdirSync(join(dir, "v1"));
    put("v1/os.raw", IMAGE);
    const sums = put("v1/SHA256SUMS", `${HASH}  os.raw\n`);
    gpg.sign(sums, join(dir, "v1/SHA256SUMS.asc"), true);
    const { asked, fetch: recorder } = recording();
    const expected = await expectImageHash({ kind: "signature" }, `${server.url}/v1/os.raw?token=abc#frag`, { fetch: recorder, keyring: gpg.keyring });
    assert.deepEqual(expected, { hash: HASH, source: `${server.url}/v1/SHA256SUMS` });
    const base = `${server.url}/v1`;
    assert.deepEqual(asked, [`${base}/os.raw.sha256`, `${base}/SHA256SUMS`, `${base}/SHA256SUMS.gpg`, `${base}/SHA256SUMS.asc`]);
  });

  it("keeps the percent-encoding of the image's name; its entry in the checksum file is the decoded name", async () => {
    const encoded = "my%20os%2Bv1%3A2.raw";
    const sums = put("my os+v1:2.raw.sha256", `${HASH}  my os+v1:2.raw\n`);
    gpg.sign(sums, join(dir, "my os+v1:2.raw.sha256.gpg"));
    const { asked, fetch: recorder } = recording();
    const expected = await expectImageHash({ kind: "signature" }, `${server.url}/${encoded}?sig=x%2Fy`, { fetch: recorder, keyring: gpg.keyring });
    assert.deepEqual(expected, { hash: HASH, source: `${server.url}/${encoded}.sha256` });
    assert.deepEqual(asked, [`${server.url}/${encoded}.sha256`, `${server.url}/${encoded}.sha256.asc`, `${server.url}/${encoded}.sha256.gpg`]);
  });

  it("shows no userinfo of the image URL in its messages", async () => {
    const secretUrl = url.replace("http://", "http://user:secret@");
    const error = await expectImageHash({ kind: "checksum" }, secretUrl, { fetch }).catch((e: Error) => e);
    assert.ok(error instanceof Error);
    assert.equal(error.message, `no checksum file for ${url.replace("http://", "http://***@")} (tried ${
      [`${url}.sha256`, `${server.url}/SHA256SUMS`].map((u) => u.replace("http://", "http://***@")).join(", ")})`);
    put("os.raw.sha256", `${OTHER}\n`);
    const expected = await expectImageHash({ kind: "checksum" }, secretUrl, { fetch });
    assert.equal(expected?.source, `${url.replace("http://", "http://***@")}.sha256`);
    assert.throws(() => checkImageHash(HASH, expected, secretUrl), (e: Error) => !e.message.includes("secret") && e.message.includes("http://***@"));
  });
});

describe("keyrings: systemd's paths, 252's included", () => {
  it("lists /etc before /usr/lib, .pgp before .gpg in each", () => {
    assert.deepEqual(DEFAULT_KEYRINGS, [
      "/etc/systemd/import-pubring.pgp",
      "/etc/systemd/import-pubring.gpg",
      "/usr/lib/systemd/import-pubring.pgp",
      "/usr/lib/systemd/import-pubring.gpg",
    ]);
  });

  it("finds the first that exists, /usr/lib/systemd/import-pubring.gpg (systemd 252's vendor keyring) too", async () => {
    const root = mkdtempSync(join(tmpdir(), "netimport-keyrings-"));
    try {
      const candidates = DEFAULT_KEYRINGS.map((path) => join(root, path));
      mkdirSync(join(root, "etc/systemd"), { recursive: true });
      mkdirSync(join(root, "usr/lib/systemd"), { recursive: true });
      copyFileSync(gpg.keyring, join(root, "usr/lib/systemd/import-pubring.gpg"));
      assert.equal(findKeyring(undefined, candidates), join(root, "usr/lib/systemd/import-pubring.gpg"));
      const sums = put("SHA256SUMS", `${HASH}  os.raw\n`);
      gpg.sign(sums, join(dir, "SHA256SUMS.gpg"));
      assert.equal((await expectImageHash({ kind: "signature" }, url, { fetch, defaultKeyrings: candidates }))?.hash, HASH);

      for (const path of ["usr/lib/systemd/import-pubring.pgp", "etc/systemd/import-pubring.gpg", "etc/systemd/import-pubring.pgp"]) {
        copyFileSync(gpg.keyring, join(root, path));
        assert.equal(findKeyring(undefined, candidates), join(root, path));
      }
      assert.equal(findKeyring("/explicit.gpg", candidates), "/explicit.gpg");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("checkImageHash", () => {
  it("passes on a match and names both hashes on a mismatch", () => {
    checkImageHash(HASH, { hash: HASH, source: "x" }, url);
    checkImageHash(HASH, undefined, url);
    assert.throws(() => checkImageHash(HASH, { hash: OTHER, source: `${url}.sha256` }, url),
      { message: `checksum mismatch for ${url}: got sha256 ${HASH}, ${url}.sha256 says ${OTHER}` });
  });
});
