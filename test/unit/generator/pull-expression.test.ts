// Table tests for every rule of the grammar and every rejection.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseBoolean, parsePullExpression, type Dialect, type ParseContext } from "../../../generator/pull-expression.ts";
import type { BootUrl } from "../../../generator/efi-boot-url.ts";

const HEX = "ab".repeat(32);

function ctx(dialect: Dialect = "import", options: { inInitrd?: boolean; boot?: BootUrl } = {}): ParseContext {
  return {
    dialect,
    origin: { path: "/proc/cmdline", what: dialect === "import" ? "rd.systemd.import=" : "rd.systemd.pull=" },
    inInitrd: options.inInitrd ?? true,
    bootUrl: () => options.boot,
  };
}

function request(expression: string, context = ctx()) {
  const result = parsePullExpression(expression, context);
  assert.equal(result.kind, "request", JSON.stringify(result));
  return result.kind === "request" ? result : assert.fail();
}

function rejected(expression: string, context = ctx()): string {
  const result = parsePullExpression(expression, context);
  assert.equal(result.kind, "rejected", `${expression}: ${JSON.stringify(result)}`);
  return result.kind === "rejected" ? result.error : "";
}

test("accepted expressions and what they mean", () => {
  const table: [string, Record<string, unknown>][] = [
    ["raw,root::http://h/root.raw.zst", { type: "raw", class: "machine", local: "root", readOnly: false, verify: "signature", runtime: true, root: { kind: "attach", partition: "root" } }],
    ["::http://h/root.tar.gz", { type: "tar", class: "machine", local: "root" }],
    ["::http://h/root.tgz?sig=1", { type: "tar", local: "root" }],
    [":img:http://h/whatever.raw", { type: "raw", local: "img" }],
    ["tar,root,rw::http://h/r.tar.xz", { type: "tar", root: { kind: "bind" }, readOnly: false }],
    ["ro,sysext::http://h/tools.raw", { class: "sysext", readOnly: true, local: "tools" }],
    ["rw,ro::http://h/a.raw", { readOnly: true }],
    ["ro,rw::http://h/a.raw", { readOnly: false }],
    ["portable::https://h/p.raw", { class: "portable" }],
    ["confext,verify=checksum::file:///srv/c.raw", { class: "confext", verify: "checksum", remote: "file:///srv/c.raw" }],
    ["verify=no::http://h/a.raw", { verify: "no" }],
    [`verify=sha256:${HEX}::http://h/a.raw`, { verify: `sha256:${HEX}`, local: "a" }],
    [`raw,verify=sha256:${HEX.toUpperCase()},root:name:http://h/a.raw`, { verify: `sha256:${HEX}`, local: "name", root: { kind: "attach", partition: "root" } }],
    ["blockdev::http://h/disk.raw.xz", { blockdev: true, local: "disk" }],
    ["runtime=no::http://h/a.raw", { runtime: false }],
    ["runtime=yes::http://h/a.raw", { runtime: true }],
    ["tar,raw::http://h/a.tar", { type: "raw" }],
    ["machine,sysext::http://h/a.raw", { class: "sysext" }],
    [",,raw,,::http://h/a.raw", { type: "raw" }],
    ["::http://h/a.raw:8080", { remote: "http://h/a.raw:8080" }],
    ["raw:local:http://h:8080/x/y.img", { local: "local", remote: "http://h:8080/x/y.img" }],
  ];
  for (const [expression, expected] of table) {
    const { request: r } = request(expression);
    for (const [key, value] of Object.entries(expected)) {
      assert.deepEqual((r as unknown as Record<string, unknown>)[key], value, `${expression}: ${key}`);
    }
    if (!("root" in expected)) assert.equal(r.root, undefined, expression);
  }
});

test("on the host runtime defaults to false (/var/lib)", () => {
  assert.equal(request("::http://h/a.raw", ctx("import", { inInitrd: false })).request.runtime, false);
});

test("rejected expressions name the value and the rule", () => {
  const table: [string, RegExp, Dialect?][] = [
    ["", /expected OPTIONS:LOCAL:URL/],
    ["raw", /expected OPTIONS:LOCAL:URL/],
    ["raw:http://h/a.raw", /expected OPTIONS:LOCAL:URL|Not a valid URL/],
    ["raw::", /Not a valid URL.*refusing: $/],
    ["raw::ftp://h/a.raw", /Not a valid URL.*ftp:\/\/h\/a\.raw/],
    ["raw::http://", /Not a valid URL/],
    ["raw::http://h/a b.raw", /Not a valid URL/],
    ["raw::http://gw/https://u:p@h/a.raw", /The URL holds a user name and password after its host/],
    ["raw:../x:http://h/a.raw", /'\.\.\/x' is not a valid image name/],
    ["raw:.#tmp:http://h/a.raw", /not a valid image name/],
    ["raw::http://h/", /Failed to derive a local name from URL 'http:\/\/h\/'/],
    ["tar::http://h/.tar", /Failed to derive a local name/],
    ["tar,blockdev::http://h/a.tar", /'blockdev' only available for raw images/],
    ["sysext,root::http://h/a.raw", /'root' needs the image class 'machine', not 'sysext'/],
    ["verify=sha256:abc::http://h/a.raw", /64 hexadecimal digits, got 'abc'/],
    [`verify=sha256:${HEX}0::http://h/a.raw`, /64 hexadecimal digits/],
    ["raw::http://h/a.raw", /No image class/, "pull"],
    ["machine::http://h/a.raw", /No image type \(raw, tar\)/, "pull"],
  ];
  for (const [expression, pattern, dialect] of table) {
    assert.match(rejected(expression, ctx(dialect)), pattern, expression);
  }
});

test("unknown options and values warn, and the entry is still used", () => {
  const result = request("raw,frobnicate,verify=maybe,runtime=perhaps::http://h/a.raw");
  assert.deepEqual(result.warnings, [
    "Unknown pull option, ignoring: frobnicate",
    "Unknown verification mode, ignoring: maybe",
    "Unknown runtime= value, ignoring: perhaps",
  ]);
  assert.equal(result.request.verify, "signature");
});

test("systemd's dialect: root and sha256 are not options there", () => {
  const result = request("raw,machine,root::http://h/a.raw", ctx("pull"));
  assert.equal(result.request.root, undefined);
  assert.deepEqual(result.warnings, ["Unknown pull option, ignoring: root"]);
  const pinned = parsePullExpression(`raw,machine,verify=sha256:${HEX}::http://h/a.raw`, ctx("pull"));
  assert.notEqual(pinned.kind, "request");
});

test("bootorigin derives the URL from the boot URL, or skips the entry gracefully", () => {
  const boot = { url: "http://10.0.2.2:18080/uki/boot.efi?x#y", source: "StubDeviceURL" };
  const result = request("raw,machine,verify=no,blockdev,bootorigin:rootdisk:image.raw.xz", ctx("pull", { boot }));
  assert.equal(result.request.remote, "http://10.0.2.2:18080/uki/image.raw.xz");
  assert.match(result.notes.join("\n"), /StubDeviceURL is 'http:\/\/10\.0\.2\.2:18080\/uki\/boot\.efi\?x#y', derived download URL/);

  const skipped = parsePullExpression("tar,bootorigin:root:image.tar.xz", ctx("import"));
  assert.equal(skipped.kind, "skipped");
  assert.match(skipped.kind === "skipped" ? skipped.reason : "", /not booted via UEFI HTTP boot/);

  assert.match(rejected("bootorigin::image.raw", ctx("import", { boot: { url: "file:///boot.efi", source: "LoaderDeviceURL" } })), /LoaderDeviceURL is not a valid HTTP URL/);
});

test("parseBoolean accepts systemd's spellings only", () => {
  for (const t of ["1", "yes", "Y", "true", "t", "on", "ON"]) assert.equal(parseBoolean(t), true, t);
  for (const f of ["0", "no", "n", "false", "F", "off"]) assert.equal(parseBoolean(f), false, f);
  for (const x of ["", "2", "yess", "enable"]) assert.equal(parseBoolean(x), undefined, x);
});
