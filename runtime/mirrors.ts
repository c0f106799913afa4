// Where a file can be fetched from: the URL itself, then each mirror. A mirror is a base URL; the
// file's name (the URL's last path component) is resolved against it, so
// `--mirror=http://m/images/` turns `http://origin/a/b/os.raw.zst` into `http://m/images/os.raw.zst`.

/** The last path component of a URL, percent-encoded as in the URL. */
export function urlFileName(url: string): string {
  const path = new URL(url).pathname;
  return path.slice(path.lastIndexOf("/") + 1);
}

/** `name` resolved against a mirror base URL (a base without trailing slash is taken as a folder). */
function resolveAgainstMirror(mirror: string, name: string): string {
  const base = new URL(mirror);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  base.search = "";
  base.hash = "";
  return new URL(name, base).href;
}

/**
 * The URLs to try for `url`, in order: the URL itself, then the same file name on each mirror.
 *
 * @example candidateUrls("http://o/x/os.raw", ["http://m1/", "http://m2/img"])
 * // ["http://o/x/os.raw", "http://m1/os.raw", "http://m2/img/os.raw"]
 */
export function candidateUrls(url: string, mirrors: readonly string[] = []): string[] {
  const name = urlFileName(url);
  const all = [new URL(url).href, ...mirrors.map((mirror) => resolveAgainstMirror(mirror, name))];
  return [...new Set(all)];
}
