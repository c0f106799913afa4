// URL and image-name rules, exactly as systemd's web-util.c, import-util.c and discover-image.c
// implement them, so that command lines behave the same under netimport and under systemd.

/**
 * systemd's http_url_is_valid(): http:// or https://, something after it, ASCII only. Stricter in
 * one point: no spaces or control characters, which no valid URL has and a unit file must not get.
 */
export function isHttpUrl(url: string): boolean {
  const rest = url.startsWith("http://") ? url.slice(7) : url.startsWith("https://") ? url.slice(8) : undefined;
  return rest !== undefined && rest.length > 0 && isAscii(rest);
}

/** systemd's file_url_is_valid(): file:/ followed by something, ASCII only. */
export function isFileUrl(url: string): boolean {
  if (!url.startsWith("file:/")) return false;
  const rest = url.slice(6);
  return rest.length > 0 && isAscii(rest);
}

function isAscii(text: string): boolean {
  return /^[\x21-\x7e]*$/.test(text);
}

/** The offset where the path starts, after `scheme:`, slashes and the host; undefined if malformed. */
function pathStart(url: string): number | undefined {
  const colon = url.indexOf(":");
  if (colon <= 0) return undefined;
  let d = colon + 1;
  while (url[d] === "/") d++;
  let n = 0;
  while (d + n < url.length && !"/?#".includes(url[d + n]!)) n++;
  return n === 0 ? undefined : d + n;
}

/** End of the path: query and fragment cut off, trailing slashes eaten (never before `start`). */
function pathEnd(url: string, start: number): number {
  let e = start;
  while (e < url.length && url[e] !== "?" && url[e] !== "#") e++;
  while (e > start && url[e - 1] === "/") e--;
  return e;
}

/**
 * systemd's import_url_last_component(): the last non-empty path component, ignoring query and
 * fragment. Throws when the URL has no host or no path component.
 *
 * @example urlLastComponent("https://example.com/images/root.raw.xz?x=1") // "root.raw.xz"
 */
export function urlLastComponent(url: string): string {
  const h = pathStart(url);
  if (h === undefined) throw new Error(`not a URL with a host: ${url}`);
  const e = pathEnd(url, h);
  let p = e;
  while (p > h && url[p - 1] !== "/") p--;
  if (e <= p) throw new Error(`URL has no file name component: ${url}`);
  return url.slice(p, e);
}

/**
 * systemd's import_url_change_suffix(): drops query and fragment, trailing slashes and
 * `dropComponents` path components, then appends `/` and `suffix`.
 * `bootorigin` uses dropComponents = 1 (import_url_change_last_component).
 *
 * @example urlChangeSuffix("http://10.0.2.2/boot/uki.efi", 1, "root.raw.xz") // "http://10.0.2.2/boot/root.raw.xz"
 */
export function urlChangeSuffix(url: string, dropComponents: number, suffix: string): string {
  const h = pathStart(url);
  if (h === undefined) throw new Error(`not a URL with a host: ${url}`);
  let e = pathEnd(url, h);
  for (let n = dropComponents; n > 0; n--) {
    while (e > h && url[e - 1] !== "/") e--;
    while (e > h && url[e - 1] === "/") e--;
  }
  return `${url.slice(0, e)}/${suffix}`;
}

const RAW_SUFFIXES = [".xz", ".gz", ".bz2", ".zst", ".sysext.raw", ".confext.raw", ".raw", ".qcow2", ".img", ".bin"];
const TAR_SUFFIXES = [".tar", ".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tgz", ".tbz2", ".txz", ".tzst"];

/** systemd's raw_strip_suffixes(): strips the suffixes above, in that order, until none is left. */
export function rawStripSuffixes(name: string): string {
  let q = name;
  for (;;) {
    let changed = false;
    for (const suffix of RAW_SUFFIXES) {
      if (q.endsWith(suffix)) {
        q = q.slice(0, -suffix.length);
        changed = true;
      }
    }
    if (!changed) return q;
  }
}

/** systemd's tar_strip_suffixes(): strips the first matching tar suffix; an empty result is an error. */
export function tarStripSuffixes(name: string): string {
  const suffix = TAR_SUFFIXES.find((s) => name.endsWith(s));
  const stripped = suffix ? name.slice(0, -suffix.length) : name;
  if (stripped.length === 0) throw new Error(`nothing left of '${name}' once its tar suffix is removed`);
  return stripped;
}

/** The image type a URL's file name suggests: tar suffixes mean tar, anything else raw. */
export function inferImageType(url: string): "raw" | "tar" {
  let name: string;
  try {
    name = urlLastComponent(url);
  } catch {
    return "raw";
  }
  return TAR_SUFFIXES.some((s) => name.endsWith(s)) ? "tar" : "raw";
}

/**
 * systemd's image_name_is_valid(): a valid file name (not empty, `.` or `..`, no `/`, at most 255
 * bytes), no control characters, not a `.#` temporary.
 */
export function isValidImageName(name: string): boolean {
  if (name.length === 0 || name === "." || name === ".." || name.includes("/")) return false;
  if (Buffer.byteLength(name) > 255) return false;
  if (/[\x00-\x1f\x7f]/.test(name)) return false;
  return !name.startsWith(".#");
}
