// What the image's SHA-256 must be, settled BEFORE the image is fetched (so a missing checksum or
// signature fails in milliseconds, not after gigabytes), and the final comparison.
//   no         nothing is checked
//   checksum   <name>.sha256 next to the image, else SHA256SUMS next to it
//   signature  the same, plus a detached OpenPGP signature over that checksum file:
//              <name>.sha256.asc, <name>.sha256.gpg, then SHA256SUMS.gpg, SHA256SUMS.asc
//   sha256:HEX the hash is pinned on the command line
// "Next to the image" is what systemd-pull means by it (import_url_change_last_component()): the
// image URL's last path component replaced, its query and fragment dropped.
import { redactUrl } from "../generator/redact.ts";
import { expectedHash } from "./checksum-file.ts";
import { urlFileName } from "./mirrors.ts";

export type VerifyMode =
  | { kind: "no" }
  | { kind: "checksum" }
  | { kind: "signature" }
  | { kind: "pinned"; hash: string };

/** Parses `--verify=`; throws on anything else. */
export function parseVerifyMode(text: string): VerifyMode {
  if (text === "no" || text === "checksum" || text === "signature") return { kind: text };
  const pinned = /^sha256:([0-9a-fA-F]{64})$/.exec(text);
  if (pinned) return { kind: "pinned", hash: pinned[1]!.toLowerCase() };
  throw new Error(`invalid --verify=${text} (expected no, checksum, signature or sha256:<64 hex digits>)`);
}

/** Fetches a small file (trying mirrors); undefined when it does not exist anywhere. */
export type SmallFileFetcher = (url: string) => Promise<{ data: Buffer; url: string } | undefined>;

/** The hash the image must have, and where it came from (for messages: a URL has its userinfo redacted). */
export interface Expectation {
  hash: string;
  source: string;
}

export interface ExpectationOptions {
  fetch: SmallFileFetcher;
  /** Keyring file for `signature` (default: systemd's import keyring paths). */
  keyring?: string;
  /** Keyring candidates when none is given (injectable for tests). */
  defaultKeyrings?: readonly string[];
}

export interface ChecksumSource {
  /** The checksum file. */
  url: string;
  /** Its detached signatures, in the order they are tried. */
  signatures: string[];
  /** Whether a bare hash (no file name) counts: in `<name>.sha256`, not in SHA256SUMS. */
  allowBare: boolean;
}

/**
 * The URL of the file `name` (percent-encoded, as in a URL) next to the file at `url`: its last path
 * component replaced, the query and fragment dropped, as systemd's import_url_change_last_component().
 *
 * @example siblingUrl("https://o/img/os.raw?token=abc#x", "os.raw.sha256") // "https://o/img/os.raw.sha256"
 */
function siblingUrl(url: string, name: string): string {
  const sibling = new URL(url);
  sibling.search = "";
  sibling.hash = "";
  // "./": a name with a colon must not read as a scheme.
  return new URL(`./${name}`, sibling).href;
}

/** The checksum files for the image at `imageUrl`, in the order systemd-pull tries them, each with its signatures. */
function checksumSources(imageUrl: string): ChecksumSource[] {
  const name = urlFileName(imageUrl);
  const sums = siblingUrl(imageUrl, "SHA256SUMS");
  const sumsSource = { url: sums, signatures: [`${sums}.gpg`, `${sums}.asc`], allowBare: false };
  // A URL ending in "/" names no file, so there is no <name>.sha256 to look for.
  if (!name) return [sumsSource];
  const sha256 = siblingUrl(imageUrl, `${name}.sha256`);
  return [{ url: sha256, signatures: [`${sha256}.asc`, `${sha256}.gpg`], allowBare: true }, sumsSource];
}

/**
 * Settles the expected SHA-256 of the image at `imageUrl` under `mode` (undefined for `no`).
 *
 * @example const expected = await expectImageHash({ kind: "checksum" }, url, { fetch });
 */
export async function expectImageHash(mode: VerifyMode, imageUrl: string, options: ExpectationOptions): Promise<Expectation | undefined> {
  if (mode.kind === "no") return undefined;
  if (mode.kind === "pinned") return { hash: mode.hash, source: "--verify=sha256:" };
  const fileName = decodeURIComponent(urlFileName(imageUrl));
  // openpgp.js costs ~20 MiB of memory and start-up time: loaded only when a signature is checked.
  const signatures = mode.kind === "signature" ? await import("./signature.ts") : undefined;
  const keys = signatures
    ? await (async () => {
      const { findKeyring, readKeyring } = signatures;
      const path = findKeyring(options.keyring, options.defaultKeyrings);
      return { path, keys: await readKeyring(path) };
    })()
    : undefined;
  const tried: string[] = [];
  for (const source of checksumSources(imageUrl)) {
    const sums = await options.fetch(source.url);
    tried.push(source.url);
    if (!sums) continue;
    if (keys) {
      let signed = false;
      for (const signatureUrl of source.signatures) {
        const signature = await options.fetch(signatureUrl);
        tried.push(signatureUrl);
        if (!signature) continue;
        await signatures!.verifyDetachedSignature(sums.data, signature.data, redactUrl(signature.url), keys.keys, keys.path);
        signed = true;
        break;
      }
      if (!signed) continue;
    }
    const shownUrl = redactUrl(sums.url);
    return { hash: expectedHash(sums.data.toString("utf8"), fileName, shownUrl, source.allowBare), source: shownUrl };
  }
  const what = keys ? "no signed checksum file" : "no checksum file";
  throw new Error(`${what} for ${redactUrl(imageUrl)} (tried ${tried.map(redactUrl).join(", ")})`);
}

/** Throws when the image's hash differs from the expectation. */
export function checkImageHash(actual: string, expected: Expectation | undefined, imageUrl: string): void {
  if (expected && actual !== expected.hash) {
    throw new Error(`checksum mismatch for ${redactUrl(imageUrl)}: got sha256 ${actual}, ${expected.source} says ${expected.hash}`);
  }
}
