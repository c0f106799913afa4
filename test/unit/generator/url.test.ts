// systemd's own cases from src/test/test-import-util.c, plus the suffix rules.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  inferImageType,
  isFileUrl,
  isHttpUrl,
  isValidImageName,
  rawStripSuffixes,
  tarStripSuffixes,
  urlChangeSuffix,
  urlLastComponent,
} from "../../../generator/url.ts";

test("urlLastComponent follows import_url_last_component()", () => {
  const ok: [string, string][] = [
    ["https://foobar/waldo/quux", "quux"],
    ["https://foobar/waldo/quux/", "quux"],
    ["https://foobar/waldo/", "waldo"],
    ["https://foobar/waldo/quux?foo=bar", "quux"],
    ["https://foobar/waldo/quux/?foo=bar", "quux"],
    ["https://foobar/waldo/quux/?foo=bar#piep", "quux"],
    ["https://foobar/waldo/quux/#piep", "quux"],
    ["https://foobar/waldo/quux#piep", "quux"],
    ["x:y/z", "z"],
  ];
  for (const [input, output] of ok) assert.equal(urlLastComponent(input), output, input);
  for (const bad of ["https://foobar/", "https://foobar", "https://", "", ":", ":/", "x:/", "x:y"]) {
    assert.throws(() => urlLastComponent(bad), Error, bad);
  }
});

test("urlChangeSuffix follows import_url_change_suffix()", () => {
  const ok: [string, number, string][] = [
    ["https://foobar/waldo/quux", 1, "https://foobar/waldo/wuff"],
    ["https://foobar/waldo/quux/", 1, "https://foobar/waldo/wuff"],
    ["https://foobar/waldo/quux///?mief", 1, "https://foobar/waldo/wuff"],
    ["https://foobar/waldo/quux///?mief#opopo", 1, "https://foobar/waldo/wuff"],
    ["https://foobar/waldo/quux/quff", 2, "https://foobar/waldo/wuff"],
    ["https://foobar/waldo/quux/quff/", 2, "https://foobar/waldo/wuff"],
    ["https://foobar/waldo/quux/quff", 0, "https://foobar/waldo/quux/quff/wuff"],
    ["https://foobar/waldo/quux/quff?aa?bb##4", 0, "https://foobar/waldo/quux/quff/wuff"],
    ["x:y", 0, "x:y/wuff"],
    ["x:y/z", 0, "x:y/z/wuff"],
    ["x:y/z/", 0, "x:y/z/wuff"],
    ["x:y/z/", 1, "x:y/wuff"],
    ["x:y/z/", 2, "x:y/wuff"],
  ];
  for (const [input, n, output] of ok) assert.equal(urlChangeSuffix(input, n, "wuff"), output, `${input} ${n}`);
  for (const bad of ["https://", "", ":", ":/", "x:/"]) assert.throws(() => urlChangeSuffix(bad, 0, "wuff"), Error, bad);
});

test("bootorigin derivation: the boot file is replaced, query and fragment dropped", () => {
  assert.equal(urlChangeSuffix("http://10.0.2.2:18080/boot.efi", 1, "image.raw.xz"), "http://10.0.2.2:18080/image.raw.xz");
  assert.equal(urlChangeSuffix("http://example.com/uki/boot.efi?token=1#x", 1, "root.tar.xz"), "http://example.com/uki/root.tar.xz");
  assert.equal(urlChangeSuffix("http://example.com/boot.efi", 1, "sub/root.raw"), "http://example.com/sub/root.raw");
});

test("URL validity follows http_url_is_valid() and file_url_is_valid()", () => {
  for (const url of ["http://a", "https://example.com/x.raw", "http://10.0.2.2:8080/a?b#c"]) assert.ok(isHttpUrl(url), url);
  for (const url of ["http://", "https://", "ftp://a/b", "HTTP://a", "http://ä/x", "example.com/x", "http://a b/c", "http://a\n"]) {
    assert.ok(!isHttpUrl(url), url);
  }
  assert.ok(isFileUrl("file:///srv/x.raw"));
  assert.ok(!isFileUrl("file:/"));
  assert.ok(!isFileUrl("file:relative"));
});

test("raw suffixes are stripped repeatedly, tar suffixes once", () => {
  assert.equal(rawStripSuffixes("image.raw.xz"), "image");
  assert.equal(rawStripSuffixes("image.img.gz"), "image");
  assert.equal(rawStripSuffixes("foo.sysext.raw.zst"), "foo");
  assert.equal(rawStripSuffixes("disk.qcow2"), "disk");
  assert.equal(rawStripSuffixes("plain"), "plain");
  assert.equal(tarStripSuffixes("root.tar.gz"), "root");
  assert.equal(tarStripSuffixes("root.tzst"), "root");
  assert.equal(tarStripSuffixes("root.tar.tar"), "root.tar");
  assert.throws(() => tarStripSuffixes(".tar"), /nothing left/);
});

test("the image type is inferred from the URL's file name", () => {
  assert.equal(inferImageType("http://h/root.tar.zst"), "tar");
  assert.equal(inferImageType("http://h/root.tgz?x=1"), "tar");
  assert.equal(inferImageType("http://h/root.raw.zst"), "raw");
  assert.equal(inferImageType("http://h/root.img"), "raw");
  assert.equal(inferImageType("http://h/"), "raw");
});

test("image names follow image_name_is_valid()", () => {
  for (const name of ["root", "my image", "a.b-c_d", "x".repeat(255)]) assert.ok(isValidImageName(name), name);
  for (const name of ["", ".", "..", "a/b", ".#tmp", "a\tb", "x".repeat(256), "é".repeat(128)]) assert.ok(!isValidImageName(name), name);
});
