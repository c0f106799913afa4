// Credentials in URLs (`https://user:password@host/…`) are secrets: no unit file, command line or
// log line may show them. A URL is shown, and passed on the runtime's command line, with its userinfo
// replaced by "***"; the runtime completes it from the file the URL was configured in
// (`--secrets-from=FILE`, see runtime/url-secrets.ts), finding it with credentialIndex(), which the
// generator uses too, to report at boot a URL the runtime will not be able to complete.

/** What stands in for a URL's user name and password wherever the URL is shown. */
export const USERINFO_PLACEHOLDER = "***";

// scheme://, then the userinfo: anything up to the authority's last "@" (a URL parser splits there too).
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^/?#\s]*@/gi;

/**
 * The user name and password part of a URL as written (without the "@"), or undefined when it has none.
 *
 * @example urlUserinfo("https://u:p@h/x") // "u:p"
 */
export function urlUserinfo(url: string): string | undefined {
  const match = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)@/i.exec(url);
  return match ? match[1] : undefined;
}

/**
 * The URL with its userinfo replaced by the placeholder; unchanged when it has none.
 *
 * @example redactUrl("http://user:secret@proxy:3128") // "http://***@proxy:3128"
 */
export function redactUrl(url: string): string {
  const userinfo = urlUserinfo(url);
  if (userinfo === undefined) return url;
  const at = url.indexOf("://") + 3;
  return `${url.slice(0, at)}${USERINFO_PLACEHOLDER}@${url.slice(at + userinfo.length + 1)}`;
}

/**
 * Every URL in a free text (a log line, an error message) with its userinfo replaced by the placeholder.
 *
 * @example redactSecrets("HTTP 407 from http://u:p@proxy/") // "HTTP 407 from http://***@proxy/"
 */
export function redactSecrets(text: string): string {
  return text.replace(USERINFO, `$1${USERINFO_PLACEHOLDER}@`);
}

/**
 * Every URL with a user name or password in `text`, whatever the file's format: a URL starts at its
 * scheme inside a whitespace-separated word (`Mirror=https://…`, `rd.systemd.import=raw::https://…`)
 * and ends with the word; quotes around it are dropped.
 */
function urlsWithCredentials(text: string): string[] {
  const found: string[] = [];
  for (const word of text.split(/\s+/)) {
    const start = word.search(/(?:https?|file):\/\//i);
    if (start < 0) continue;
    const url = word.slice(start).replace(/["']+$/, "");
    const userinfo = urlUserinfo(url);
    if (userinfo !== undefined && userinfo !== USERINFO_PLACEHOLDER) found.push(url);
  }
  return found;
}

/**
 * The URLs with credentials in `texts`, by the redacted form they are shown and passed on as: one
 * entry completes a `***` URL; none, or two different ones, cannot.
 *
 * @example credentialIndex(["Mirror=https://u:p@m/x/"]).get("https://***@m/x/") // Set { "https://u:p@m/x/" }
 */
export function credentialIndex(texts: Iterable<string>): Map<string, Set<string>> {
  const index = new Map<string, Set<string>>();
  for (const text of texts) {
    for (const url of urlsWithCredentials(text)) {
      const shown = redactUrl(url);
      index.set(shown, (index.get(shown) ?? new Set()).add(url));
    }
  }
  return index;
}
