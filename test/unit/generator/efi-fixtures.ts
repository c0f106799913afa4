// efivarfs fixtures built byte by byte: 4 bytes of attributes, then the variable's data.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../support/temp-dir.ts";

// Written out here rather than imported, so that a wrong GUID in efi-boot-url.ts fails the tests:
// systemd's LoaderDevicePath vendor GUID (StubDeviceURL, LoaderDeviceURL), and EFI_GLOBAL_VARIABLE.
const LOADER_VENDOR_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
const EFI_GLOBAL_GUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

const ATTRIBUTES = Buffer.from([0x06, 0x00, 0x00, 0x00]); // BOOTSERVICE_ACCESS | RUNTIME_ACCESS

export function utf16z(text: string): Buffer {
  return Buffer.concat([Buffer.from(text, "utf16le"), Buffer.alloc(2)]);
}

/** A device path node: type, subtype, 16-bit little-endian length including the 4-byte header. */
export function node(type: number, subType: number, data: Uint8Array, length = data.length + 4): Buffer {
  const header = Buffer.from([type, subType, length & 0xff, length >> 8]);
  return Buffer.concat([header, data]);
}

export const END_NODE = node(0x7f, 0xff, new Uint8Array(0));

/** MAC(52:54:00:12:34:56) as OVMF writes it: messaging 0x03 / 0x0b, 32-byte address + if type. */
export function macNode(): Buffer {
  const data = Buffer.alloc(33);
  Buffer.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]).copy(data);
  data[32] = 0x01;
  return node(0x03, 0x0b, data);
}

/** IPv4(0.0.0.0, DHCP): messaging 0x03 / 0x0c, 23 bytes of data. */
export function ipv4Node(): Buffer {
  return node(0x03, 0x0c, Buffer.alloc(23));
}

/** IPv6: messaging 0x03 / 0x0d, 56 bytes of data. */
export function ipv6Node(): Buffer {
  return node(0x03, 0x0d, Buffer.alloc(56));
}

/** DNS: messaging 0x03 / 0x1f: IsIPv6 flag, then one IPv4 server padded to 16 bytes. */
export function dnsNode(): Buffer {
  const data = Buffer.alloc(17);
  data[0] = 0;
  Buffer.from([10, 0, 2, 3]).copy(data, 1);
  return node(0x03, 0x1f, data);
}

export function uriNode(uri: string): Buffer {
  return node(0x03, 0x18, Buffer.from(uri, "latin1"));
}

/** EFI_LOAD_OPTION: attributes, FilePathListLength, UTF-16 description, device path. */
export function loadOption(description: string, devicePath: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt32LE(1, 0); // LOAD_OPTION_ACTIVE
  head.writeUInt16LE(devicePath.length, 4);
  return Buffer.concat([head, utf16z(description), devicePath]);
}

export function bootCurrent(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

export type Variables = Record<string, Buffer>;

/** Writes `{ "StubDeviceURL": data, "Boot0003": data }` into a new efivarfs-like folder. */
export function makeEfivarfs(variables: Variables): string {
  const dir = tempDir("netimport-efivarfs-");
  mkdirSync(dir, { recursive: true });
  for (const [name, data] of Object.entries(variables)) {
    const guid = name.endsWith("DeviceURL") ? LOADER_VENDOR_GUID : EFI_GLOBAL_GUID;
    writeFileSync(join(dir, `${name}-${guid}`), Buffer.concat([ATTRIBUTES, data]));
  }
  return dir;
}
