// Detached OpenPGP signatures over checksum files, checked with openpgp.js against systemd's import
// keyring (binary keyrings as gpg writes them, possibly several keys concatenated, or armored).
import { existsSync, readFileSync } from "node:fs";
import * as openpgp from "openpgp";

/**
 * systemd-importd's keyring paths, the administrator's before the vendor's: systemd 252 uses
 * /etc/systemd/import-pubring.gpg, else /usr/lib/systemd/import-pubring.gpg (USER_KEYRING_PATH and
 * VENDOR_KEYRING_PATH in its meson.build); newer systemd names them .pgp. Each directory's .pgp first,
 * so that a keyring written for newer systemd wins over a leftover one in the old place.
 */
export const DEFAULT_KEYRINGS = [
  "/etc/systemd/import-pubring.pgp",
  "/etc/systemd/import-pubring.gpg",
  "/usr/lib/systemd/import-pubring.pgp",
  "/usr/lib/systemd/import-pubring.gpg",
];

/** The keyring to use: the given file, else the first of the default paths that exists. */
export function findKeyring(explicit: string | undefined, candidates: readonly string[] = DEFAULT_KEYRINGS): string {
  if (explicit) return explicit;
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new Error(`no keyring to verify signatures with (looked for ${candidates.join(", ")})`);
  return found;
}

function isArmored(data: Uint8Array): boolean {
  return Buffer.from(data.subarray(0, 256)).toString("latin1").includes("-----BEGIN PGP");
}

/** Every public key in a keyring file (binary or armored). */
export async function readKeyring(path: string): Promise<openpgp.Key[]> {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (error) {
    throw new Error(`cannot read keyring ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  try {
    return isArmored(data)
      ? await openpgp.readKeys({ armoredKeys: data.toString("utf8") })
      : await openpgp.readKeys({ binaryKeys: new Uint8Array(data) });
  } catch (error) {
    throw new Error(`cannot read keys from keyring ${path}: ${(error as Error).message}`);
  }
}

/**
 * Verifies a detached signature (binary or armored) over `data`; throws a one-line reason
 * (bad signature, unknown key, unreadable signature) naming `signatureUrl`.
 *
 * @example await verifyDetachedSignature(sums, sig, "http://o/SHA256SUMS.gpg", await readKeyring(path), path);
 */
export async function verifyDetachedSignature(
  data: Uint8Array, signatureData: Uint8Array, signatureUrl: string, keys: openpgp.Key[], keyringPath: string,
): Promise<void> {
  let signature: openpgp.Signature;
  try {
    signature = isArmored(signatureData)
      ? await openpgp.readSignature({ armoredSignature: Buffer.from(signatureData).toString("utf8") })
      : await openpgp.readSignature({ binarySignature: new Uint8Array(signatureData) });
  } catch (error) {
    throw new Error(`cannot read the OpenPGP signature ${signatureUrl}: ${(error as Error).message}`);
  }
  const signingKeyIds = signature.getSigningKeyIDs().map((id) => id.toHex().toUpperCase());
  const known = keys.some((key) => key.getKeyIDs().some((id) => signingKeyIds.includes(id.toHex().toUpperCase())));
  if (!known) {
    throw new Error(`signature ${signatureUrl} is made by key ${signingKeyIds.join(", ")}, which is not in keyring ${keyringPath}`);
  }
  const message = await openpgp.createMessage({ binary: data });
  const result = await openpgp.verify({ message, signature, verificationKeys: keys });
  for (const entry of result.signatures) {
    try {
      await entry.verified;
      return;
    } catch (error) {
      throw new Error(`bad signature ${signatureUrl} (key ${entry.keyID.toHex().toUpperCase()}): ${(error as Error).message}`);
    }
  }
  throw new Error(`signature ${signatureUrl} holds no signature`);
}
