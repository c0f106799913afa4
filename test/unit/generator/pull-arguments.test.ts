// The runtime's command line: proxies by each request's scheme, credentials never on it.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { DownloadSettings, ImportRequest } from "../../../generator/import-request.ts";
import { pullArguments } from "../../../generator/pull-arguments.ts";

const EXE = "/usr/lib/netimport/netimport";
const CONF = "/etc/netimport/netimport.conf";
const PROXY_CONF = "/etc/netimport/netimport.conf.d/50-proxy.conf";

function request(remote: string, path = "/proc/cmdline"): ImportRequest {
  return { origin: { path, what: "rd.systemd.import=" }, class: "machine", type: "raw", local: "root", remote, readOnly: false, verify: "checksum", blockdev: false, runtime: true };
}

test("regression: an http image with an https mirror gets the https proxy too, and --no-proxy", () => {
  const settings: DownloadSettings = {
    mirrors: [{ url: "https://mirror/images/", source: CONF }],
    httpsProxy: { url: "http://proxy:3128", source: CONF },
    noProxy: ".lan",
  };
  const { args } = pullArguments(request("http://10.0.2.2/root.raw"), settings, EXE);
  assert.deepEqual(args, [EXE, "pull", "--type=raw", "--verify=checksum", "--mirror=https://mirror/images/", "--https-proxy=http://proxy:3128", "--no-proxy=.lan", "http://10.0.2.2/root.raw", "/run/machines/root.raw"]);
  assert.ok(!args.some((a) => a.startsWith("--proxy=")));
});

test("both proxies when both are configured, whatever the image's scheme; --no-proxy only with a proxy", () => {
  const both: DownloadSettings = { mirrors: [], httpsProxy: { url: "http://p1:1", source: CONF }, httpProxy: { url: "http://p2:2", source: CONF }, noProxy: "h" };
  for (const remote of ["https://h/a.raw", "http://h/a.raw", "file:///srv/a.raw"]) {
    const { args } = pullArguments(request(remote), both, EXE);
    assert.deepEqual(args.filter((a) => a.includes("proxy")), ["--https-proxy=http://p1:1", "--http-proxy=http://p2:2", "--no-proxy=h"], remote);
  }
  assert.deepEqual(pullArguments(request("http://h/a.raw"), { mirrors: [], noProxy: "h" }, EXE).args.filter((a) => a.includes("proxy")), []);
});

test("regression: URLs with credentials are shown redacted, with the files to complete them from", () => {
  const settings: DownloadSettings = {
    mirrors: [{ url: "https://m1/", source: CONF }, { url: "https://tok@m2/", source: PROXY_CONF }, { url: "https://u:p@m3/", source: PROXY_CONF }],
    httpsProxy: { url: "http://pu:pp@proxy:3128", source: PROXY_CONF },
    httpProxy: { url: "http://plain:3128", source: CONF },
  };
  const { args, secretFiles } = pullArguments(request("https://deploy:s3cret@images/root.raw"), settings, EXE);
  assert.deepEqual(args.slice(4), [
    "--mirror=https://m1/",
    "--mirror=https://***@m2/",
    "--mirror=https://***@m3/",
    "--https-proxy=http://***@proxy:3128",
    "--http-proxy=http://plain:3128",
    `--secrets-from=${PROXY_CONF}`,
    "--secrets-from=/proc/cmdline",
    "https://***@images/root.raw",
    "/run/machines/root.raw",
  ]);
  assert.deepEqual(secretFiles, [PROXY_CONF, "/proc/cmdline"]);
  assert.doesNotMatch(args.join(" "), /s3cret|pu:pp|tok@|u:p@/);
});

test("no --secrets-from without a redacted URL; a credential file names itself", () => {
  assert.deepEqual(pullArguments(request("https://h/a.raw"), { mirrors: [] }, EXE).secretFiles, []);
  const fromCredential = pullArguments(request("https://u:p@h/a.raw", "/run/credentials/@system/import.pull"), { mirrors: [] }, EXE);
  assert.deepEqual(fromCredential.secretFiles, ["/run/credentials/@system/import.pull"]);
});

test("the other settings, in a fixed order", () => {
  const settings: DownloadSettings = { mirrors: [], caFile: "/ca.pem", keyring: "/k.pgp", idleTimeoutSec: 12.5, retries: 0, imageMemoryMax: "50%" };
  const r = { ...request("https://h/a.raw"), verify: "signature" as const, readOnly: true };
  assert.deepEqual(pullArguments(r, settings, EXE).args.slice(2, -2), [
    "--type=raw", "--verify=signature", "--ro", "--keyring=/k.pgp", "--ca-file=/ca.pem", "--idle-timeout=12.5", "--retries=0", "--image-memory-max=50%",
  ]);
});
