// raw or tar, from the URL's file name when not given, as systemd-import-generator infers it.

export type ImageType = "raw" | "tar";

const TAR_SUFFIXES = [".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.zst", ".tzst", ".tar.bz2", ".tbz2"];

/**
 * @example inferImageType("http://o/root.tar.zst") // "tar"
 * @example inferImageType("http://o/root.raw.xz")  // "raw"
 */
export function inferImageType(url: string): ImageType {
  let path: string;
  try {
    path = new URL(url).pathname.toLowerCase();
  } catch {
    path = url.toLowerCase();
  }
  return TAR_SUFFIXES.some((suffix) => path.endsWith(suffix)) ? "tar" : "raw";
}
