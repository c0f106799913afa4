// roothash= and usrhash=: the dm-verity root hashes of the root and /usr partitions, pinned on the
// kernel command line. systemd-veritysetup-generator parses them with unhexmem() and refuses what is
// not hex (an odd count of digits included); cryptsetup then refuses a hash whose length is not the
// digest length of the tree's hash algorithm. Checked here, before a value goes into a unit, to the
// lengths a DDI can have: SHA-256 (the Discoverable Partitions Specification's) to SHA-512.

export type HashKey = "roothash" | "usrhash";

export const ROOT_HASH_RULE = "an even number of 64 to 128 hexadecimal digits, the SHA-256 to SHA-512 root hash of a dm-verity tree";

/**
 * The hash as the runtime takes it (lower case), or undefined when systemd would refuse it.
 *
 * @example rootHash("9F86D081…" (64 digits)) // "9f86d081…"
 * @example rootHash("abc") // undefined
 */
export function rootHash(value: string): string | undefined {
  return /^(?:[0-9a-fA-F]{2}){32,64}$/.test(value) ? value.toLowerCase() : undefined;
}
