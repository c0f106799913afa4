import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { logText } from "../../../generator/log-line.ts";
import { credentialIndex } from "../../../generator/redact.ts";
import { completeSecretUrls } from "../../../runtime/url-secrets.ts";

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), "netimport-secrets-")); });
after(() => rmSync(dir, { recursive: true, force: true }));

describe("url secrets", () => {
  it("finds URLs with credentials in config files, credentials and command lines alike", () => {
    const text = [
      "[Download]",
      "Mirror=https://alice:s3cr3t@mirror1/images/ https://plain/images/ https://bob:pw@mirror2/x/",
      "HTTPSProxy=http://proxy-user:proxy%20pw@proxy:3128",
      "Pull=raw,root::https://token@images/root.raw.zst",
      'rd.systemd.import="raw::https://u:p@h/a.raw" quiet',
    ].join("\n");
    assert.deepEqual([...credentialIndex([text]).values()].flatMap((urls) => [...urls]), [
      "https://alice:s3cr3t@mirror1/images/", "https://bob:pw@mirror2/x/", "http://proxy-user:proxy%20pw@proxy:3128",
      "https://token@images/root.raw.zst", "https://u:p@h/a.raw",
    ]);
  });

  it("completes each *** URL from the files, and refuses none or two matches", async () => {
    const conf = join(dir, "50-proxy.conf");
    writeFileSync(conf, "[Download]\nHTTPSProxy=http://u:p@proxy:3128\nMirror=https://a:1@m/x/ https://b:2@m/x/\n", { mode: 0o600 });
    const cred = join(dir, "import.pull");
    writeFileSync(cred, "raw,root::https://tok@img/root.raw\n");
    assert.deepEqual(
      await completeSecretUrls(["https://***@img/root.raw", "https://plain/", "http://***@proxy:3128"], [conf, cred]),
      ["https://tok@img/root.raw", "https://plain/", "http://u:p@proxy:3128"],
    );
    await assert.rejects(completeSecretUrls(["https://***@m/x/"], [conf]), /2 different URLs with credentials in .* match https:\/\/\*\*\*@m\/x\/: cannot tell which is meant/);
    await assert.rejects(completeSecretUrls(["https://***@nowhere/"], [conf]), /no URL with credentials in .* matches https:\/\/\*\*\*@nowhere\//);
    await assert.rejects(completeSecretUrls(["https://***@img/root.raw"], []), /no --secrets-from=FILE says where it is/);
    await assert.rejects(completeSecretUrls(["https://***@img/root.raw"], [join(dir, "missing")]), /cannot read the credentials of the URLs from .*missing: ENOENT/);
    assert.deepEqual(await completeSecretUrls(["https://img/root.raw"], []), ["https://img/root.raw"]);
  });

  it("output lines show no credentials and no raw control characters", () => {
    assert.equal(logText("HTTP 407 from http://u:p@proxy:3128/ for https://t@img/a\u001b[2J\nforged line\r"),
      "HTTP 407 from http://***@proxy:3128/ for https://***@img/a\\x1b[2J\\nforged line\\r");
  });
});
