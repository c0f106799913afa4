// Credentials in URLs (`https://user:password@host/…`) are secrets: no unit file, command line or
// log line may show them. A URL is shown, and passed on the runtime's command line, with its userinfo
// replaced by "***"; the runtime completes it from the file the URL was configured in
// (`--secrets-from=FILE`, see runtime/url-secrets.ts).

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
