// `--secrets-from=FILE`: the generated unit shows URLs with their user name and password replaced by
// "***" (generator/redact.ts) and names the file they were configured in (a config file, the
// import.pull credential, /proc/cmdline); here each such URL is completed from that file, so the
// credentials reach the HTTP client without ever being on a command line, in a unit or in a log.
import { readFile } from "node:fs/promises";
import { credentialIndex, urlUserinfo, USERINFO_PLACEHOLDER } from "../generator/redact.ts";

/** Whether `url` carries the "***" placeholder instead of its credentials. */
function hasSecretPlaceholder(url: string): boolean {
  return urlUserinfo(url) === USERINFO_PLACEHOLDER;
}

/**
 * Completes each URL that has the "***" placeholder from the URLs with credentials in `files`: the
 * one whose redacted form it is. Throws when none, or two different ones, match, or a file cannot be
 * read. URLs without the placeholder are returned unchanged.
 *
 * @example await completeSecretUrls(["https://***@m/img/"], ["/etc/netimport/netimport.conf"]) // ["https://u:p@m/img/"]
 */
export async function completeSecretUrls(urls: readonly string[], files: readonly string[]): Promise<string[]> {
  if (!urls.some(hasSecretPlaceholder)) return [...urls];
  if (files.length === 0) throw new Error(`${urls.find(hasSecretPlaceholder)} stands for a URL with credentials, but no --secrets-from=FILE says where it is`);
  const texts: string[] = [];
  for (const file of files) {
    try {
      texts.push(await readFile(file, "utf8"));
    } catch (error) {
      throw new Error(`cannot read the credentials of the URLs from ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  }
  const byRedacted = credentialIndex(texts);
  return urls.map((url) => {
    if (!hasSecretPlaceholder(url)) return url;
    const matches = [...(byRedacted.get(url) ?? [])];
    if (matches.length === 1) return matches[0]!;
    const where = files.join(", ");
    if (matches.length === 0) throw new Error(`no URL with credentials in ${where} matches ${url}`);
    throw new Error(`${matches.length} different URLs with credentials in ${where} match ${url}: cannot tell which is meant`);
  });
}
