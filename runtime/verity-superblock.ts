// The dm-verity superblock `veritysetup format` writes at the start of a hash device (cryptsetup's
// lib/verity/verity.c, struct verity_sb): 512 bytes, little endian. The kernel never reads it: the table
// `netimport verity` loads must carry its fields. DDIs keep it at offset 0 of the verity partition (systemd
// uses hash offset 0), so the hash tree starts at the first hash block after it.
//
//   0  signature "verity\0\0"    8  version (1)          12  hash type (0 Chrome OS, 1 normal)
//  16  uuid[16]                  32  algorithm[32]        64  data block size   68  hash block size
//  72  data blocks (u64)         80  salt size (u16)      88  salt[256]        344  padding to 512

export const VERITY_SUPERBLOCK_SIZE = 512;

/** A hash device whose superblock cannot be used; the message says what is wrong with it. */
class VeritySuperblockError extends Error {
  override name = "VeritySuperblockError";
}

export interface VeritySuperblock {
  /** 0: the original Chrome OS format, 1: the normal one (salt before the data). */
  hashType: 0 | 1;
  uuid: string;
  algorithm: string;
  dataBlockSize: number;
  hashBlockSize: number;
  dataBlocks: number;
  salt: Buffer;
  /** Where the hash tree starts, in hash blocks from the start of the hash device. */
  hashStartBlock: number;
}

/** Digest sizes (bytes) of the hash algorithms the kernel's crypto API and veritysetup both name so. */
export const VERITY_DIGEST_SIZES: Readonly<Record<string, number>> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 };

/** cryptsetup's VERITY_BLOCK_SIZE_OK: a power of two from 512 bytes to 512 KiB. */
const blockSizeOk = (size: number) => size >= 512 && size <= 512 * 1024 && (size & (size - 1)) === 0;

function uuidText(bytes: Buffer): string {
  const h = bytes.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/**
 * Parses the superblock at the start of a hash device. `where` names the device in errors.
 *
 * ```ts
 * const sb = parseVeritySuperblock(first512Bytes, "/run/netimport/root.hash");
 * sb.algorithm;        // "sha256"
 * sb.hashStartBlock;   // 1 (4096-byte hash blocks)
 * ```
 */
export function parseVeritySuperblock(bytes: Buffer, where: string): VeritySuperblock {
  if (bytes.length < VERITY_SUPERBLOCK_SIZE) throw new VeritySuperblockError(`${where} is too small to hold a verity superblock`);
  if (!bytes.subarray(0, 8).equals(Buffer.from("verity\0\0", "latin1"))) {
    throw new VeritySuperblockError(`${where} has no verity superblock (made by veritysetup format) at its start`);
  }
  const version = bytes.readUInt32LE(8);
  if (version !== 1) throw new VeritySuperblockError(`${where}: verity superblock version ${version} is not supported (only 1)`);
  const hashType = bytes.readUInt32LE(12);
  if (hashType !== 0 && hashType !== 1) throw new VeritySuperblockError(`${where}: verity hash type ${hashType} is not supported (0 or 1)`);
  const algorithmField = bytes.subarray(32, 64);
  const end = algorithmField.indexOf(0);
  const algorithm = algorithmField.subarray(0, end < 0 ? 32 : end).toString("latin1");
  if (VERITY_DIGEST_SIZES[algorithm] === undefined) {
    throw new VeritySuperblockError(`${where}: verity hash algorithm '${algorithm}' is not supported (${Object.keys(VERITY_DIGEST_SIZES).join(", ")})`);
  }
  const dataBlockSize = bytes.readUInt32LE(64);
  const hashBlockSize = bytes.readUInt32LE(68);
  if (!blockSizeOk(dataBlockSize) || !blockSizeOk(hashBlockSize)) {
    throw new VeritySuperblockError(`${where}: verity block sizes ${dataBlockSize}/${hashBlockSize} are invalid (powers of two from 512 to 524288)`);
  }
  const dataBlocks = bytes.readBigUInt64LE(72);
  if (dataBlocks === 0n || dataBlocks * BigInt(dataBlockSize) > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new VeritySuperblockError(`${where}: verity superblock claims ${dataBlocks} data blocks`);
  }
  const saltSize = bytes.readUInt16LE(80);
  if (saltSize > 256) throw new VeritySuperblockError(`${where}: verity salt of ${saltSize} bytes is larger than the superblock's 256`);
  return {
    hashType,
    uuid: uuidText(bytes.subarray(16, 32)),
    algorithm,
    dataBlockSize,
    hashBlockSize,
    dataBlocks: Number(dataBlocks),
    salt: Buffer.from(bytes.subarray(88, 88 + saltSize)),
    // cryptsetup's VERITY_hash_offset_block with the superblock at offset 0.
    hashStartBlock: Math.ceil(VERITY_SUPERBLOCK_SIZE / hashBlockSize),
  };
}
