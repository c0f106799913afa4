import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { discoverBootUrl, efivarfsReader } from "../../../generator/efi-boot-url.ts";
import {
  bootCurrent,
  dnsNode,
  END_NODE,
  ipv4Node,
  ipv6Node,
  loadOption,
  macNode,
  makeEfivarfs,
  node,
  uriNode,
  utf16z,
  type Variables,
} from "./efi-fixtures.ts";

const URL = "http://10.0.2.2:18080/boot.efi";

function discover(variables: Variables) {
  const dir = makeEfivarfs(variables);
  try {
    return discoverBootUrl(efivarfsReader(dir));
  } finally {
    rmSync(dir, { recursive: true });
  }
}

const pciPath = () => node(0x01, 0x01, Buffer.from([0x00, 0x03])); // PCI(0x3,0x0)

test("StubDeviceURL wins over LoaderDeviceURL and the boot entry", () => {
  assert.deepEqual(
    discover({
      StubDeviceURL: utf16z(URL),
      LoaderDeviceURL: utf16z("http://other/loader.efi"),
      BootCurrent: bootCurrent(1),
      Boot0001: loadOption("UEFI HTTP", Buffer.concat([uriNode("http://third/x.efi"), END_NODE])),
    }),
    { url: URL, source: "StubDeviceURL" },
  );
});

test("LoaderDeviceURL is used when the stub set none", () => {
  assert.deepEqual(discover({ LoaderDeviceURL: utf16z(URL) }), { url: URL, source: "LoaderDeviceURL" });
});

test("an empty StubDeviceURL falls through to the next source", () => {
  assert.equal(discover({ StubDeviceURL: utf16z(""), LoaderDeviceURL: utf16z(URL) })?.source, "LoaderDeviceURL");
});

const shapes: [string, Buffer][] = [
  ["IPv4", Buffer.concat([pciPath(), macNode(), ipv4Node(), uriNode(URL), END_NODE])],
  ["IPv6", Buffer.concat([pciPath(), macNode(), ipv6Node(), uriNode(URL), END_NODE])],
  ["DNS nodes before the URI node", Buffer.concat([pciPath(), macNode(), ipv4Node(), dnsNode(), dnsNode(), uriNode(URL), END_NODE])],
  ["an empty URI node before the real one", Buffer.concat([pciPath(), macNode(), ipv4Node(), uriNode(""), uriNode(URL), END_NODE])],
];
for (const [shape, path] of shapes) {
  test(`BootCurrent → Boot#### → URI node: ${shape}`, () => {
    assert.deepEqual(discover({ BootCurrent: bootCurrent(0x1a), Boot001A: loadOption("UEFI HTTPv4 (MAC:525400123456)", path) }), {
      url: URL,
      source: "Boot001A device path (BootCurrent)",
    });
  });
}

test("not HTTP-booted: no URI node, only an empty one, no boot entry, no variables", () => {
  const disk = Buffer.concat([pciPath(), node(0x04, 0x01, Buffer.alloc(38)), END_NODE]);
  assert.equal(discover({ BootCurrent: bootCurrent(2), Boot0002: loadOption("disk", disk) }), undefined);
  assert.equal(discover({ BootCurrent: bootCurrent(2), Boot0002: loadOption("empty", Buffer.concat([ipv4Node(), uriNode(""), END_NODE])) }), undefined);
  assert.equal(discover({ BootCurrent: bootCurrent(3) }), undefined);
  assert.equal(discover({}), undefined);
});

/** The URL found through BootCurrent → Boot0001 whose device path is `path`. */
const fromDevicePath = (path: Buffer) => discover({ BootCurrent: bootCurrent(1), Boot0001: loadOption("UEFI HTTP", path) })?.url;

test("truncated device paths yield the nodes before the damage, never a crash", () => {
  const full = Buffer.concat([macNode(), ipv4Node(), uriNode(URL), END_NODE]);
  for (let cut = 0; cut < full.length; cut++) {
    const uri = fromDevicePath(full.subarray(0, cut));
    assert.ok(uri === undefined || uri === URL, `cut at ${cut}: ${uri}`);
  }
  assert.equal(fromDevicePath(full.subarray(0, full.length - END_NODE.length)), URL, "the URI node is whole: found without the end node");
  // A length field larger than what is left, or smaller than the header, stops parsing.
  assert.equal(fromDevicePath(node(0x03, 0x18, Buffer.from(URL), 200)), undefined);
  assert.equal(fromDevicePath(Buffer.concat([node(0x03, 0x0c, Buffer.alloc(0), 2), uriNode(URL)])), undefined);
  // A truncated load option (description without terminator) has no device path.
  assert.equal(discover({ BootCurrent: bootCurrent(1), Boot0001: Buffer.from([1, 0, 0, 0, 10, 0, 0x41]) }), undefined);
  assert.equal(discover({ BootCurrent: Buffer.from([1]) }), undefined);
});

test("UTF-16 variables stop at the NUL terminator, or at their end without one", () => {
  assert.equal(discover({ StubDeviceURL: Buffer.concat([utf16z(URL), Buffer.from("garbage")]) })?.url, URL);
  assert.equal(discover({ LoaderDeviceURL: Buffer.from(URL, "utf16le") })?.url, URL);
});
