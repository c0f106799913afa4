// Real gpg keys and detached signatures for the signature tests, made in a throwaway GNUPGHOME.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface GpgFixture {
  /** Binary keyring (gpg --export) holding the trusted keys. */
  keyring: string;
  /** The same keys, armored. */
  armoredKeyring: string;
  /** Detached signature of `file` by the trusted key (armor: .asc style). */
  sign(file: string, out: string, armor?: boolean): void;
  /** Detached signature by a key that is not in the keyring. */
  signWithUnknownKey(file: string, out: string): void;
  cleanup(): void;
}

export function createGpgFixture(): GpgFixture {
  const home = mkdtempSync(join(tmpdir(), "netimport-gpg-"));
  const gpg = (...args: string[]): Buffer =>
    execFileSync("gpg", ["--batch", "--quiet", "--homedir", home, "--pinentry-mode", "loopback", "--passphrase", "", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  gpg("--quick-generate-key", "Trusted Image Signer <trusted@example.org>", "ed25519", "sign", "never");
  gpg("--quick-generate-key", "Other Signer <other@example.org>", "ed25519", "sign", "never");
  // A second trusted key, so the keyring holds several concatenated keys as real ones do.
  gpg("--quick-generate-key", "Second Trusted <second@example.org>", "rsa2048", "sign", "never");
  const keyring = join(home, "import-pubring.gpg");
  writeFileSync(keyring, Buffer.concat([
    gpg("--export", "second@example.org"),
    gpg("--export", "trusted@example.org"),
  ]));
  const armoredKeyring = join(home, "import-pubring.asc");
  writeFileSync(armoredKeyring, gpg("--armor", "--export", "trusted@example.org", "second@example.org"));
  readFileSync(keyring);
  return {
    keyring,
    armoredKeyring,
    sign(file, out, armor = false) {
      rmSync(out, { force: true });
      gpg("--local-user", "trusted@example.org", ...(armor ? ["--armor"] : []), "--output", out, "--detach-sign", file);
    },
    signWithUnknownKey(file, out) {
      rmSync(out, { force: true });
      gpg("--local-user", "other@example.org", "--output", out, "--detach-sign", file);
    },
    cleanup() {
      try {
        execFileSync("gpgconf", ["--homedir", home, "--kill", "all"], { stdio: "ignore" });
      } catch { /* no agent */ }
      rmSync(home, { recursive: true, force: true });
    },
  };
}
