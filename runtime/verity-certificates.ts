// The certificates a verity root hash signature may be made with: `*.crt` (PEM) in systemd's verity.d
// directories, found the way systemd lists configuration files (conf_files_list with
// CONF_FILES_REGULAR|CONF_FILES_FILTER_MASKED): a name in an earlier directory hides the same name in later
// ones, a file that is empty or a symlink to /dev/null masks the name, hidden files are skipped, and the
// result is ordered by file name. Unreadable or unparsable files are skipped, as systemd does.
import { X509Certificate } from "node:crypto";
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { join } from "node:path";
import type { TrustedCertificate } from "./pkcs7-verify.ts";

/** systemd's CONF_PATHS_NULSTR("verity.d"), highest priority first (v252 and v257 alike). */
export const VERITY_CERTIFICATE_DIRS: readonly string[] = ["/etc/verity.d", "/run/verity.d", "/usr/local/lib/verity.d", "/usr/lib/verity.d"];

export interface VerityCertificates {
  trusted: TrustedCertificate[];
  /** Files that were looked at but not used, with the reason ("…/a.crt: not a PEM certificate"). */
  skipped: string[];
}

async function isMasked(path: string): Promise<boolean> {
  const target = await realpath(path).catch(() => undefined);
  if (target === "/dev/null") return true;
  const info = await stat(path).catch(() => undefined);
  return info !== undefined && info.isFile() && info.size === 0;
}

/**
 * Loads the trusted certificates from `dirs` (default: systemd's verity.d directories).
 *
 * ```ts
 * const { trusted } = await loadVerityCertificates();
 * trusted.map((t) => t.path);   // ["/etc/verity.d/vendor.crt", "/usr/lib/verity.d/os.crt"]
 * ```
 */
export async function loadVerityCertificates(dirs: readonly string[] = VERITY_CERTIFICATE_DIRS): Promise<VerityCertificates> {
  const chosen = new Map<string, string | null>(); // file name → path, or null when masked
  for (const dir of dirs) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (!name.endsWith(".crt") || name.startsWith(".") || chosen.has(name)) continue;
      const path = join(dir, name);
      chosen.set(name, (await isMasked(path)) ? null : path);
    }
  }
  const trusted: TrustedCertificate[] = [];
  const skipped: string[] = [];
  for (const name of [...chosen.keys()].sort()) {
    const path = chosen.get(name);
    if (!path) continue;
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) {
      skipped.push(`${path}: not a regular file`);
      continue;
    }
    try {
      trusted.push({ path, certificate: new X509Certificate(await readFile(path)) });
    } catch (error) {
      skipped.push(`${path}: ${(error as NodeJS.ErrnoException).code === "EACCES" ? "not readable" : "not a PEM certificate"}`);
    }
  }
  return { trusted, skipped };
}
