import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfigFiles, type ConfigText } from "../../../generator/config-file.ts";
import type { LogLine } from "../../../generator/log-line.ts";

const MAIN = "/etc/netimport/netimport.conf";
const DROPIN = "/etc/netimport/netimport.conf.d/50-site.conf";

function parse(...files: ConfigText[]) {
  const log: LogLine[] = [];
  const config = parseConfigFiles(files, log);
  return { config, log, text: log.map((l) => l.message).join("\n") };
}

test("settings from the main file and drop-ins: scalars override, lists append, empty resets", () => {
  const { config, log } = parse(
    {
      path: "/usr/lib/netimport/netimport.conf",
      content: "[Download]\nMirror=https://m1/images/ https://m2/images/\nIdleTimeoutSec=45\nRetries=3\nCAFile=/etc/ssl/ca.pem\n[Verify]\nKeyring=/etc/netimport/keys.pgp\n",
    },
    { path: DROPIN, content: "[Download]\nMirror=https://m3/\nRetries=9\nHTTPSProxy=http://proxy:3128\nNoProxy=10.0.0.0/8,.lan\n" },
    { path: "/etc/netimport/netimport.conf.d/60-actions.conf", content: "[Import]\nFailureAction=reboot\n" },
  );
  assert.deepEqual(log, []);
  assert.deepEqual(config.settings, {
    mirrors: [
      { url: "https://m1/images/", source: "/usr/lib/netimport/netimport.conf" },
      { url: "https://m2/images/", source: "/usr/lib/netimport/netimport.conf" },
      { url: "https://m3/", source: DROPIN },
    ],
    idleTimeoutSec: 45,
    retries: 9,
    caFile: "/etc/ssl/ca.pem",
    keyring: "/etc/netimport/keys.pgp",
    httpsProxy: { url: "http://proxy:3128", source: DROPIN },
    noProxy: "10.0.0.0/8,.lan",
  });
  assert.deepEqual(config.actions, { failure: "reboot" });
  const reset = parse({ path: "/a.conf", content: "[Download]\nMirror=https://m1/\nMirror=\nMirror=https://m2/\nRetries=3\nRetries=\n" });
  assert.deepEqual(reset.config.settings, { mirrors: [{ url: "https://m2/", source: "/a.conf" }] });
});

test("each URL keeps the file it was set in, through overrides and across files", () => {
  const { config } = parse(
    { path: MAIN, content: "[Download]\nHTTPSProxy=http://u:p@one:3128\nHTTPProxy=http://plain:3128\nMirror=https://t@m1/\n" },
    { path: DROPIN, content: "[Download]\nHTTPSProxy=http://v:q@two:3128\nMirror=https://m2/\n" },
  );
  assert.deepEqual(config.settings.httpsProxy, { url: "http://v:q@two:3128", source: DROPIN });
  assert.deepEqual(config.settings.httpProxy, { url: "http://plain:3128", source: MAIN });
  assert.deepEqual(config.settings.mirrors.map((m) => m.source), [MAIN, DROPIN]);
});

test("values are systemd's: a ';' is part of the value, 'true' is a string, quotes stay", () => {
  const { config, log } = parse({ path: MAIN, content: "[Download]\nMirror=https://h/a;b\nNoProxy=true\nCAFile=/etc/ca;x.pem ; not a comment\n" });
  assert.deepEqual(log, []);
  assert.deepEqual(config.settings.mirrors, [{ url: "https://h/a;b", source: MAIN }]);
  assert.equal(config.settings.noProxy, "true");
  // Blanks separate hosts in NoProxy=, so the "comment" became two more hosts.
  assert.equal(config.settings.caFile, "/etc/ca;x.pem ; not a comment");
  const quoted = parse({ path: MAIN, content: "[Verify]\nKeyring=\"/etc/k.pgp\"\n" });
  assert.match(quoted.text, /Keyring= is not an absolute path, ignoring: "\/etc\/k\.pgp"/);
});

test("a continued Mirror= line is one list", () => {
  const { config } = parse({ path: MAIN, content: "[Download]\nMirror=https://m1/ \\\n  https://m2/\n" });
  assert.deepEqual(config.settings.mirrors.map((m) => m.url), ["https://m1/", "https://m2/"]);
});

test("a broken section header stops that file only: what came before and the next files still apply", () => {
  const { config, text } = parse(
    { path: MAIN, content: "[Download]\nRetries=2\n[Download\nRetries=99\nIdleTimeoutSec=5\n" },
    { path: DROPIN, content: "[Verify]\nKeyring=/k.pgp\n" },
  );
  assert.equal(config.settings.retries, 2);
  assert.equal(config.settings.idleTimeoutSec, undefined);
  assert.equal(config.settings.keyring, "/k.pgp");
  assert.match(text, /^\/etc\/netimport\/netimport\.conf:3: Invalid section header '\[Download'$/m);
});

test("bad values are reported with file and line, and skipped", () => {
  const { config, text } = parse({
    path: MAIN,
    content: "[Download]\nRetries=-1\nIdleTimeoutSec=soon\nMirror=ftp://x/ https://ok/\nCAFile=relative.pem\nTimeout=3\nRetries=0x10\nIdleTimeoutSec=1e3\nHTTPSProxy=socks5://p\nCAFile=/a\tb\nImageMemoryMax=lots\n[Nonsense]\nA=1\n",
  });
  assert.match(text, /^\/etc\/netimport\/netimport\.conf:2: Retries= must be a non-negative integer, ignoring: -1$/m);
  assert.match(text, /:3: IdleTimeoutSec= must be a non-negative number, ignoring: soon$/m);
  assert.match(text, /:4: Mirror= is not an http:\/\/ or https:\/\/ URL, ignoring: ftp:\/\/x\/$/m);
  assert.match(text, /:5: CAFile= is not an absolute path, ignoring: relative\.pem$/m);
  assert.match(text, /:6: Unknown key 'Timeout' in section \[Download\], ignoring\.$/m);
  assert.match(text, /:7: Retries= must be a non-negative integer, ignoring: 0x10$/m);
  assert.match(text, /:8: IdleTimeoutSec= must be a non-negative number, ignoring: 1e3$/m);
  assert.match(text, /:9: HTTPSProxy= is not an http:\/\/ or https:\/\/ URL, ignoring: socks5:\/\/p$/m);
  assert.match(text, /:10: CAFile= must not contain control characters, ignoring: \/a\tb$/m);
  assert.match(text, /:11: ImageMemoryMax= is invalid: expected a size such as 512M/m);
  assert.match(text, /:12: Unknown section 'Nonsense'\. Ignoring\.$/m);
  assert.deepEqual(config.settings, { mirrors: [{ url: "https://ok/", source: MAIN }] });
});

test("SuccessAction= and FailureAction= take systemd's action names only; empty resets", () => {
  const { config, text } = parse({
    path: MAIN,
    content: "[Import]\nSuccessAction=poweroff\nSuccessAction=reboot now\nFailureAction=soft-reboot\nFailureAction=Reboot\n",
  });
  assert.deepEqual(config.actions, { success: "poweroff", failure: "soft-reboot" });
  assert.match(text, /:3: SuccessAction= is not an action systemd knows \(expected one of none, reboot, .*halt-immediate\), ignoring: reboot now$/m);
  assert.match(text, /:5: FailureAction= is not an action systemd knows/m);
  assert.deepEqual(parse({ path: MAIN, content: "[Import]\nFailureAction=halt\nFailureAction=\n" }).config.actions, {});
});

test("ImageMemoryMax= is normalised for the runtime; empty resets", () => {
  const value = (text: string) => parse({ path: MAIN, content: `[Download]\nImageMemoryMax=${text}\n` }).config.settings.imageMemoryMax;
  assert.equal(value("512M"), String(512 * 1024 ** 2));
  assert.equal(value("1.5G"), String(1.5 * 1024 ** 3));
  assert.equal(value("75%"), "75%");
  assert.equal(value("0%"), undefined);
  assert.equal(parse({ path: MAIN, content: "[Download]\nImageMemoryMax=4G\nImageMemoryMax=\n" }).config.settings.imageMemoryMax, undefined);
});

test("NoProxy= hosts may be separated by commas or blanks", () => {
  const { config } = parse({ path: MAIN, content: "[Download]\nNoProxy=.lan, 10.0.0.0/8  localhost,\n" });
  assert.equal(config.settings.noProxy, ".lan,10.0.0.0/8,localhost");
});

test("Pull= entries remember file and line; an empty Pull= resets the list", () => {
  const { config } = parse(
    { path: MAIN, content: "[Import]\nPull=::http://h/a.raw\nPull=\nPull=::http://h/b.raw\n" },
    { path: DROPIN, content: "\n[Import]\nPull=::http://h/c.raw\n" },
  );
  assert.deepEqual(config.pulls, [
    { expression: "::http://h/b.raw", origin: { path: MAIN, what: "[Import] Pull= (line 4)" } },
    { expression: "::http://h/c.raw", origin: { path: DROPIN, what: "[Import] Pull= (line 3)" } },
  ]);
});

test("values that would show credentials differently in logs and units are refused", () => {
  const { config, text } = parse({
    path: MAIN,
    content: "[Download]\nMirror=http://gw/https://u:p@h/\nHTTPSProxy=http://gw/x?to=https://u:p@h\nNoProxy=https://u:p@h\nCAFile=/etc/https://u:p@h/ca.pem\n",
  });
  assert.deepEqual(config.settings, { mirrors: [] });
  assert.match(text, /:2: Mirror= holds a user name and password after its host/);
  assert.match(text, /:3: HTTPSProxy= holds a user name and password after its host/);
  assert.match(text, /:4: NoProxy= must be a list of host names, domains or addresses/);
  assert.match(text, /:5: CAFile= looks like it holds a URL with a user name and password/);
});
