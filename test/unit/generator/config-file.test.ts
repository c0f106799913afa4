import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfigFiles } from "../../../generator/config-file.ts";
import type { LogLine } from "../../../generator/log-line.ts";

test("settings from the main file and drop-ins: scalars override, lists append, empty resets", () => {
  const log: LogLine[] = [];
  const config = parseConfigFiles(
    [
      {
        path: "/usr/lib/netimport/netimport.conf",
        text: "[Download]\nMirror=https://m1/images/ https://m2/images/\nIdleTimeoutSec=45\nRetries=3\nCAFile=/etc/ssl/ca.pem\n[Verify]\nKeyring=/etc/netimport/keys.pgp\n",
      },
      { path: "/etc/netimport/netimport.conf.d/10-site.conf", text: "[Download]\nMirror=https://m3/\nRetries=9\nHTTPSProxy=http://proxy:3128\nNoProxy=10.0.0.0/8,.lan\n" },
      { path: "/etc/netimport/netimport.conf.d/20-reset.conf", text: "[Import]\nFailureAction=reboot\n" },
    ],
    log,
  );
  assert.deepEqual(log, []);
  assert.deepEqual(config.settings, {
    mirrors: ["https://m1/images/", "https://m2/images/", "https://m3/"],
    idleTimeoutSec: 45,
    retries: 9,
    caFile: "/etc/ssl/ca.pem",
    keyring: "/etc/netimport/keys.pgp",
    httpsProxy: "http://proxy:3128",
    noProxy: "10.0.0.0/8,.lan",
  });
  assert.deepEqual(config.actions, { failure: "reboot" });
  const reset = parseConfigFiles([{ path: "/a.conf", text: "[Download]\nMirror=https://m1/\nMirror=\nMirror=https://m2/\n" }], log);
  assert.deepEqual(reset.settings.mirrors, ["https://m2/"]);
});

test("bad values and unknown keys are reported with the file and skipped", () => {
  const log: LogLine[] = [];
  const config = parseConfigFiles(
    [{ path: "/etc/netimport/netimport.conf", text: "[Download]\nRetries=-1\nIdleTimeoutSec=soon\nMirror=ftp://x/ https://ok/\nCAFile=relative.pem\nTimeout=3\n[Nonsense]\nA=1\n" }],
    log,
  );
  const text = log.map((l) => l.message).join("\n");
  assert.match(text, /netimport\.conf: \[Download\] Retries=: Retries= must be a non-negative integer, ignoring: -1/);
  assert.match(text, /IdleTimeoutSec= must be a non-negative number, ignoring: soon/);
  assert.match(text, /mirror is not an http:\/\/ or https:\/\/ URL, ignoring: ftp:\/\/x\//);
  assert.match(text, /CAFile=: not an absolute path, ignoring: relative\.pem/);
  assert.match(text, /unknown key Timeout= in \[Download\]/);
  assert.match(text, /unknown section \[Nonsense\]/);
  assert.deepEqual(config.settings, { mirrors: ["https://ok/"] });
});
