// The device-mapper table of a dm-verity device (the kernel's Documentation/admin-guide/device-mapper/
// verity.rst): one target over the whole data area,
//   0 <data sectors> verity <version> <data dev> <hash dev> <data block size> <hash block size>
//     <data blocks> <hash start block> <algorithm> <root hash> <salt | ->
// No optional arguments: a block that does not match its hash reads as an I/O error, as systemd's own
// default (no restart_on_corruption or panic_on_corruption).
import { VERITY_DIGEST_SIZES, type VeritySuperblock } from "./verity-superblock.ts";

/** A root hash that cannot be the root of this hash tree. */
class RootHashFormatError extends Error {
  override name = "RootHashFormatError";
}

/** Checks that `rootHash` is hex of the algorithm's digest size; returns it in lower case. */
export function checkRootHash(rootHash: string, algorithm: string): string {
  const size = VERITY_DIGEST_SIZES[algorithm];
  if (size === undefined) throw new RootHashFormatError(`hash algorithm '${algorithm}' is not supported`);
  if (!/^[0-9a-fA-F]*$/.test(rootHash) || rootHash.length !== size * 2) {
    throw new RootHashFormatError(`root hash '${rootHash}' is not ${size * 2} hexadecimal digits, the size of a ${algorithm} digest`);
  }
  return rootHash.toLowerCase();
}

/**
 * The table line for `dmsetup create --table`.
 *
 * ```ts
 * verityTable({ dataDevice: "/dev/loop0", hashDevice: "/dev/loop1", superblock, rootHash });
 * // "0 16384 verity 1 /dev/loop0 /dev/loop1 4096 4096 2048 1 sha256 3f2a… 5e1c…"
 * ```
 */
export function verityTable(options: { dataDevice: string; hashDevice: string; superblock: VeritySuperblock; rootHash: string }): string {
  const { dataDevice, hashDevice, superblock: sb } = options;
  const rootHash = checkRootHash(options.rootHash, sb.algorithm);
  for (const device of [dataDevice, hashDevice]) {
    if (/\s/.test(device) || device === "") throw new Error(`device path '${device}' cannot go into a device-mapper table`);
  }
  const dataSectors = (sb.dataBlocks * sb.dataBlockSize) / 512;
  return [
    0, dataSectors, "verity", sb.hashType, dataDevice, hashDevice, sb.dataBlockSize, sb.hashBlockSize,
    sb.dataBlocks, sb.hashStartBlock, sb.algorithm, rootHash, sb.salt.length ? sb.salt.toString("hex") : "-",
  ].join(" ");
}
