// The URL the firmware booted us from (UEFI HTTP boot), read from efivarfs.
//
// Order: StubDeviceURL (systemd-stub ≥ 258), LoaderDeviceURL (systemd-boot), then the URI node of
// the device path of the Boot#### entry named by BootCurrent, for stubs that set neither.
import { openSync, readSync, closeSync } from "node:fs";
import { join } from "node:path";

const LOADER_VENDOR_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
const EFI_GLOBAL_GUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
export const DEFAULT_EFIVARFS = "/sys/firmware/efi/efivars";

export interface BootUrl {
  url: string;
  /** Where the URL was found, e.g. `StubDeviceURL` or `Boot0001 device path`. */
  source: string;
}

/** Reads one variable's data (without the 4 attribute bytes), or undefined when it does not exist. */
export type EfiVariableReader = (name: string, guid: string) => Uint8Array | undefined;

/**
 * Reads variables from an efivarfs folder. Each file is read whole with a single read(): on kernel
 * 6.12 an efivarfs file cannot be read from an offset.
 */
export function efivarfsReader(dir: string = DEFAULT_EFIVARFS): EfiVariableReader {
  return (name, guid) => {
    let fd: number;
    try {
      fd = openSync(join(dir, `${name}-${guid}`), "r");
    } catch {
      return undefined;
    }
    try {
      const buffer = Buffer.alloc(64 * 1024);
      const n = readSync(fd, buffer, 0, buffer.length, null);
      return n <= 4 ? undefined : buffer.subarray(4, n);
    } catch {
      return undefined;
    } finally {
      closeSync(fd);
    }
  };
}

/** Decodes a NUL-terminated UTF-16LE string variable. */
function decodeUtf16Variable(data: Uint8Array): string {
  let end = 0;
  while (end + 1 < data.length && (data[end] !== 0 || data[end + 1] !== 0)) end += 2;
  return Buffer.from(data.buffer, data.byteOffset, end).toString("utf16le");
}

/** One node of a UEFI device path. */
interface DevicePathNode {
  type: number;
  subType: number;
  data: Uint8Array;
}

/**
 * Splits a device path into nodes, stopping at the end node (0x7f/0xff), at a node whose length is
 * shorter than its header, or at one running past the data (truncated paths yield what came before).
 */
function parseDevicePath(path: Uint8Array): DevicePathNode[] {
  const nodes: DevicePathNode[] = [];
  let offset = 0;
  while (offset + 4 <= path.length) {
    const type = path[offset]!;
    const subType = path[offset + 1]!;
    const length = path[offset + 2]! | (path[offset + 3]! << 8);
    if (type === 0x7f && subType === 0xff) break;
    if (length < 4 || offset + length > path.length) break;
    nodes.push({ type, subType, data: path.subarray(offset + 4, offset + length) });
    offset += length;
  }
  return nodes;
}

/** The first non-empty URI node (messaging 0x03, subtype 0x18; ASCII) of a device path. */
function uriFromDevicePath(path: Uint8Array): string | undefined {
  for (const node of parseDevicePath(path)) {
    if (node.type !== 0x03 || node.subType !== 0x18) continue;
    const uri = Buffer.from(node.data).toString("latin1").replace(/\0+$/, "");
    if (uri.length > 0) return uri;
  }
  return undefined;
}

/**
 * The device path of an EFI_LOAD_OPTION (the data of a Boot#### variable): UINT32 attributes,
 * UINT16 FilePathListLength, a NUL-terminated UTF-16 description, then the file path list.
 */
function loadOptionDevicePath(option: Uint8Array): Uint8Array | undefined {
  if (option.length < 6) return undefined;
  const pathLength = option[4]! | (option[5]! << 8);
  let offset = 6;
  while (offset + 1 < option.length && (option[offset] !== 0 || option[offset + 1] !== 0)) offset += 2;
  offset += 2; // the terminating NUL
  if (offset > option.length) return undefined;
  return option.subarray(offset, Math.min(option.length, offset + pathLength));
}

/**
 * Finds the URL this machine was HTTP-booted from, or undefined when it was not.
 *
 * @example discoverBootUrl(efivarfsReader("/sys/firmware/efi/efivars"))
 *   // { url: "http://10.0.2.2:8080/boot.efi", source: "StubDeviceURL" }
 */
export function discoverBootUrl(read: EfiVariableReader): BootUrl | undefined {
  for (const name of ["StubDeviceURL", "LoaderDeviceURL"]) {
    const data = read(name, LOADER_VENDOR_GUID);
    if (data) {
      const url = decodeUtf16Variable(data);
      if (url.length > 0) return { url, source: name };
    }
  }
  const current = read("BootCurrent", EFI_GLOBAL_GUID);
  if (!current || current.length < 2) return undefined;
  const entry = `Boot${(current[0]! | (current[1]! << 8)).toString(16).toUpperCase().padStart(4, "0")}`;
  const option = read(entry, EFI_GLOBAL_GUID);
  const path = option && loadOptionDevicePath(option);
  const url = path && uriFromDevicePath(path);
  return url ? { url, source: `${entry} device path (BootCurrent)` } : undefined;
}
