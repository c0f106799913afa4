// Reads a GUID partition table from an image file: protective MBR, primary header at LBA 1 (512- or
// 4096-byte sectors), header and entry-array CRC32s checked. Used by `netimport attach` to find the root
// partition the way systemd's Discoverable Partitions Specification names it.
import { read } from "node:fs";
import { open } from "node:fs/promises";
import { promisify } from "node:util";
import { crc32 } from "node:zlib";

export interface Partition {
  /** 1-based index in the entry array, as the kernel numbers partitions. */
  number: number;
  /** Partition type GUID, lower case. */
  type: string;
  /** Unique partition GUID (PARTUUID), lower case. */
  uuid: string;
  name: string;
  firstLba: number;
  lastLba: number;
  /** Byte offset and size in the image. */
  offset: number;
  size: number;
  attributes: bigint;
}

export interface PartitionTable {
  sectorSize: 512 | 4096;
  diskGuid: string;
  partitions: Partition[];
}

const SIGNATURE = "EFI PART";
const UNUSED = "00000000-0000-0000-0000-000000000000";

/**
 * What a partition is for, by the Discoverable Partitions Specification's names (systemd's designators):
 * the root and /usr file systems, their dm-verity hash trees, and the signatures of those trees' root hashes.
 */
export type Designator = "root" | "root-verity" | "root-verity-sig" | "usr" | "usr-verity" | "usr-verity-sig";

/**
 * DPS partition type GUIDs by Node's process.arch names, copied from systemd's src/systemd/sd-gpt.h (v257)
 * and the UAPI group's Discoverable Partitions Specification.
 */
const DPS: Record<string, Record<Designator, string>> = {
  x64: {
    root: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "root-verity": "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5", "root-verity-sig": "41092b05-9fc8-4523-994f-2def0408b176",
    usr: "8484680c-9521-48c6-9c11-b0720656f69e", "usr-verity": "77ff5f63-e7b6-4633-acf4-1565b864c0e6", "usr-verity-sig": "e7bb33fb-06cf-4e81-8273-e543b413e2e2",
  },
  ia32: {
    root: "44479540-f297-41b2-9af7-d131d5f0458a", "root-verity": "d13c5d3b-b5d1-422a-b29f-9454fdc89d76", "root-verity-sig": "5996fc05-109c-48de-808b-23fa0830b676",
    usr: "75250d76-8cc6-458e-bd66-bd47cc81a812", "usr-verity": "8f461b0d-14ee-4e81-9aa9-049b6fb97abd", "usr-verity-sig": "974a71c0-de41-43c3-be5d-5c5ccd1ad2c0",
  },
  arm64: {
    root: "b921b045-1df0-41c3-af44-4c6f280d3fae", "root-verity": "df3300ce-d69f-4c92-978c-9bfb0f38d820", "root-verity-sig": "6db69de6-29f4-4758-a7a5-962190f00ce3",
    usr: "b0e01050-ee5f-4390-949a-9101b17104e9", "usr-verity": "6e11a4e7-fbca-4ded-b9e9-e1a512bb664e", "usr-verity-sig": "c23ce4ff-44bd-4b00-b2d4-b41b3419e02a",
  },
  arm: {
    root: "69dad710-2ce4-4e3c-b16c-21a1d49abed3", "root-verity": "7386cdf2-203c-47a9-a498-f2ecce45a2d6", "root-verity-sig": "42b0455f-eb11-491d-98d3-56145ba9d037",
    usr: "7d0359a3-02b3-4f0a-865c-654403e70625", "usr-verity": "c215d751-7bcd-4649-be90-6627490a4c05", "usr-verity-sig": "d7ff812f-37d1-4902-a810-d76ba57b975a",
  },
  riscv64: {
    root: "72ec70a6-cf74-40e6-bd49-4bda08e8f224", "root-verity": "b6ed5582-440b-4209-b8da-5ff7c419ea3d", "root-verity-sig": "efe0f087-ea8d-4469-821a-4c2a96a8386a",
    usr: "beaec34b-8442-439b-a40b-984381ed097d", "usr-verity": "8f1056be-9b05-47c4-81d6-be53128e5b54", "usr-verity-sig": "d2f9000a-7a18-453f-b5cd-4d32f77a7b32",
  },
  loong64: {
    root: "77055800-792c-4f94-b39a-98c91b762bb6", "root-verity": "f3393b22-e9af-4613-a948-9d3bfbd0c535", "root-verity-sig": "5afb67eb-ecc8-4f85-ae8e-ac1e7c50e7d0",
    usr: "e611c702-575c-4cbe-9a46-434fa0bf7e3f", "usr-verity": "f46b2c26-59ae-48f0-9106-c50ed47f673d", "usr-verity-sig": "b024f315-d330-444c-8461-44bbde524e99",
  },
  s390x: {
    root: "5eead9a9-fe09-4a1e-a1d7-520d00531306", "root-verity": "b325bfbe-c7be-4ab8-8357-139e652d2f6b", "root-verity-sig": "c80187a5-73a3-491a-901a-017c3fa953e9",
    usr: "8a4f5770-50aa-4ed3-874a-99b710db6fea", "usr-verity": "31741cc4-1a2a-4111-a581-e00b447d2d06", "usr-verity-sig": "3f324816-667b-46ae-86ee-9b0c0c6c11b4",
  },
  // Little endian, as Linux on ppc64 runs today (Node names both byte orders "ppc64").
  ppc64: {
    root: "c31c45e6-3f39-412e-80fb-4809c4980599", "root-verity": "906bd944-4589-4aae-a4e4-dd983917446a", "root-verity-sig": "d4a236e7-e873-4c07-bf1d-bf6cf7f1c3c6",
    usr: "15bb03af-77e7-4d4a-b12b-c0d084f7491c", "usr-verity": "ee2b9983-21e8-4153-86d9-b6901a54d1ce", "usr-verity-sig": "c8bfbd1e-268e-4521-8bba-bf314c399557",
  },
};

/**
 * The DPS partition type of `designator` for an architecture (Node's names), or undefined for an
 * architecture the specification does not cover.
 *
 * ```ts
 * partitionTypeFor("root-verity", "x64");   // "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5"
 * ```
 */
export function partitionTypeFor(designator: Designator, arch: string = process.arch): string | undefined {
  return DPS[arch]?.[designator];
}

/** The DPS root partition type for an architecture (Node's names), or undefined for one it lacks. */
export function rootPartitionTypeFor(arch: string = process.arch): string | undefined {
  return partitionTypeFor("root", arch);
}

/** The designator a partition type stands for on this architecture, if any. */
export function designatorOf(type: string, arch: string = process.arch): Designator | undefined {
  const types = DPS[arch];
  if (!types) return undefined;
  return (Object.keys(types) as Designator[]).find((d) => types[d] === type);
}

/**
 * DPS partition attribute flags (sd-gpt.h): systemd ignores a partition marked no-auto when it discovers
 * partitions, and mounts one marked read-only read-only.
 */
export const GPT_FLAG_READ_ONLY = 1n << 60n;
export const GPT_FLAG_NO_AUTO = 1n << 63n;

/** A GUID in its mixed-endian on-disk form, as text. */
function formatGuid(bytes: Uint8Array): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, 16);
  const hex = (from: number, to: number) => b.subarray(from, to).toString("hex");
  const le = (from: number, to: number) => Buffer.from(b.subarray(from, to)).reverse().toString("hex");
  return `${le(0, 4)}-${le(4, 6)}-${le(6, 8)}-${hex(8, 10)}-${hex(10, 16)}`;
}

/** Reads up to `length` bytes at `offset` (fewer at the end of the image). */
type ReadAt = (offset: number, length: number) => Promise<Buffer>;

function fdReader(fd: number): ReadAt {
  const readFd = promisify(read);
  return async (offset, length) => {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await readFd(fd, buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  };
}

/**
 * Reads the partition table of the image at `image` (a path or an open fd): its partitions, sector
 * size and disk GUID. Resolves to undefined when the image has no GPT (a plain file system); rejects
 * with a clear message when it has a damaged one.
 *
 * ```ts
 * const table = await readGpt("/run/machines/image.raw");
 * const root = table && pickPartition(table.partitions, "root");
 * ```
 */
export async function readGpt(image: string | number): Promise<PartitionTable | undefined> {
  const file = typeof image === "number" ? undefined : await open(image, "r");
  const readAt = fdReader(file?.fd ?? (image as number));
  const name = typeof image === "number" ? `fd ${image}` : image;
  try {
    const mbr = await readAt(0, 512);
    if (mbr.length < 512 || mbr.readUInt16LE(510) !== 0xaa55) return undefined;
    const protective = [0, 1, 2, 3].some((i) => mbr[446 + i * 16 + 4] === 0xee);
    if (!protective) return undefined;
    for (const sectorSize of [512, 4096] as const) {
      const header = await readAt(sectorSize, sectorSize);
      if (header.length < 92 || header.toString("latin1", 0, 8) !== SIGNATURE) continue;
      return await parseHeader(readAt, header, sectorSize, name);
    }
    throw new Error(`${name} has a protective MBR but no GPT header at LBA 1 (neither 512- nor 4096-byte sectors)`);
  } finally {
    await file?.close();
  }
}

async function parseHeader(readAt: ReadAt, header: Buffer, sectorSize: 512 | 4096, name: string): Promise<PartitionTable> {
  const headerSize = header.readUInt32LE(12);
  if (headerSize < 92 || headerSize > sectorSize) throw new Error(`${name}: GPT header size ${headerSize} is invalid`);
  const storedCrc = header.readUInt32LE(16);
  const copy = Buffer.from(header.subarray(0, headerSize));
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== storedCrc) {
    throw new Error(`${name}: GPT header checksum mismatch (primary header at LBA 1, ${sectorSize}-byte sectors): the partition table is corrupt`);
  }
  const entriesLba = Number(header.readBigUInt64LE(72));
  const count = header.readUInt32LE(80);
  const entrySize = header.readUInt32LE(84);
  const entriesCrc = header.readUInt32LE(88);
  if (entrySize < 128 || entrySize % 8 !== 0 || count > 65536) throw new Error(`${name}: GPT entry array (${count} × ${entrySize} bytes) is invalid`);
  const entries = await readAt(entriesLba * sectorSize, count * entrySize);
  if (entries.length !== count * entrySize) throw new Error(`${name}: GPT entry array lies beyond the end of the image`);
  if (crc32(entries) !== entriesCrc) throw new Error(`${name}: GPT partition entry array checksum mismatch: the partition table is corrupt`);
  const partitions: Partition[] = [];
  for (let i = 0; i < count; i++) {
    const entry = entries.subarray(i * entrySize, (i + 1) * entrySize);
    const type = formatGuid(entry.subarray(0, 16));
    if (type === UNUSED) continue;
    const firstLba = Number(entry.readBigUInt64LE(32));
    const lastLba = Number(entry.readBigUInt64LE(40));
    if (lastLba < firstLba) throw new Error(`${name}: GPT partition ${i + 1} ends before it starts`);
    const nameBytes = entry.subarray(56, 128);
    const end = nameBytes.findIndex((_, j) => j % 2 === 0 && nameBytes[j] === 0 && nameBytes[j + 1] === 0);
    partitions.push({
      number: i + 1,
      type,
      uuid: formatGuid(entry.subarray(16, 32)),
      name: nameBytes.subarray(0, end < 0 ? 72 : end).toString("utf16le"),
      firstLba,
      lastLba,
      offset: firstLba * sectorSize,
      size: (lastLba - firstLba + 1) * sectorSize,
      attributes: entry.readBigUInt64LE(48),
    });
  }
  return { sectorSize, diskGuid: formatGuid(header.subarray(56, 72)), partitions };
}

/**
 * Picks the partition to attach: "root" → the first root partition of this architecture (undefined when
 * there is none: the caller then uses the whole image), a number → that partition, "whole" → undefined.
 *
 * ```ts
 * pickPartition(parts, "root");   // { number: 2, type: "4f68bce3-…", offset: 1048576, … }
 * pickPartition(parts, 3);        // partition 3 or undefined
 * ```
 */
export function pickPartition(parts: Partition[], selector: "root" | "whole" | number, arch: string = process.arch): Partition | undefined {
  if (selector === "whole") return undefined;
  if (selector === "root") {
    const type = rootPartitionTypeFor(arch);
    return type === undefined ? undefined : parts.find((p) => p.type === type);
  }
  return parts.find((p) => p.number === selector);
}
