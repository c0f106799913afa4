// The generator's model: what to download, where it came from, and how the boot uses it.

export type ImageClass = "machine" | "portable" | "sysext" | "confext";
export type ImageType = "raw" | "tar";
export type Verify = "no" | "checksum" | "signature" | `sha256:${string}`;

/** Where a request was written down, for log lines and the units' `SourcePath=`. */
export interface RequestOrigin {
  /** `/proc/cmdline`, the credential file or the config file. */
  path: string;
  /** e.g. `rd.systemd.import=`, `credential import.pull line 3`, `[Import] Pull=`. */
  what: string;
}

/** How the root file system is made from a request's image. */
export type RootWiring =
  /**
   * The image as systemd boots a disk (a DDI): its root partition (else the whole image) at /sysroot,
   * its /usr partition, when it has one, at /sysroot/usr, each through dm-verity when the image has a
   * verity partition for it. roothash=/usrhash= from the kernel command line pin the root hashes.
   */
  | { kind: "attach"; partition: "root"; roothash?: string; usrhash?: string }
  /** root=/dev/disk/by-loop-ref/NAME.raw[-partN]: exactly that partition, or the whole image. */
  | { kind: "attach"; partition: "whole" | number }
  /** root=tmpfs: systemd's fstab-generator mounts an empty tmpfs at /sysroot; the image provides /usr. */
  | { kind: "usr"; usrhash?: string }
  /** A tar image's folder, bind-mounted. */
  | { kind: "bind" };

/** The wiring of a raw root image attached as a DDI, with its root and /usr partitions. */
export type DdiWiring = Extract<RootWiring, { partition: "root" }>;

export function isDdiWiring(wiring: RootWiring | undefined): wiring is DdiWiring {
  return wiring?.kind === "attach" && wiring.partition === "root";
}

export interface ImportRequest {
  origin: RequestOrigin;
  class: ImageClass;
  type: ImageType;
  local: string;
  remote: string;
  readOnly: boolean;
  verify: Verify;
  blockdev: boolean;
  /** Below /run (true) or /var/lib (false). */
  runtime: boolean;
  /**
   * `lazy` / `lazy=BOOL` as the expression says (undefined: the config's `[Lazy] Default=`). After the
   * plan is made it is true only for a raw root image attached as a DDI over http(s): such an image is
   * served as a block device from HTTP Range requests and copied in the background (runtime/lazy-*.ts).
   */
  lazy?: boolean;
  root?: RootWiring;
}

/**
 * A URL from a config file together with the file it was set in. A URL with a user name or password
 * is shown redacted in the unit, and the runtime reads the credentials back from that file
 * (`--secrets-from=FILE`), so the file has to travel with the value through every merge.
 */
export interface SourcedUrl {
  url: string;
  /** The config file the value was read from, as the runtime will find it. */
  source: string;
}

/** Settings from the config files that apply to every download. */
export interface DownloadSettings {
  mirrors: SourcedUrl[];
  caFile?: string;
  keyring?: string;
  idleTimeoutSec?: number;
  retries?: number;
  httpsProxy?: SourcedUrl;
  httpProxy?: SourcedUrl;
  /** Comma-separated host list, normalised. */
  noProxy?: string;
  /** `--image-memory-max=` as the runtime takes it: a byte count, or `N%` of RAM. */
  imageMemoryMax?: string;
  /** `[Lazy] Default=`: raw root images are lazy unless their expression says `lazy=no`. */
  lazyDefault?: boolean;
  /** `[Lazy] CopyDirectory=`: where a lazy image is copied (a local disk's mount point); default the image's own folder. */
  lazyCopyDirectory?: string;
  /** `[Lazy] OutageLimitSec=`: how long a read of a block not yet local waits for the server before it fails. */
  lazyOutageLimitSec?: number;
}

/** `SuccessAction=`/`FailureAction=` of the download units; only names from emergency-action.ts. */
export interface Actions {
  success?: string;
  failure?: string;
}

export const IMAGE_CLASSES: readonly ImageClass[] = ["machine", "portable", "sysext", "confext"];

const IMAGE_ROOT: Record<ImageClass, string> = {
  machine: "machines",
  portable: "portables",
  sysext: "extensions",
  confext: "confexts",
};

/** The folder images of a class go to: /run/… when runtime, else /var/lib/…, as systemd does. */
function imageRoot(imageClass: ImageClass, runtime: boolean): string {
  return `${runtime ? "/run" : "/var/lib"}/${IMAGE_ROOT[imageClass]}`;
}

/** Where the finished image lives: `<root>/<local>.raw` for raw, `<root>/<local>` for tar. */
export function localPath(request: ImportRequest): string {
  const root = imageRoot(request.class, request.runtime);
  return request.type === "raw" ? `${root}/${request.local}.raw` : `${root}/${request.local}`;
}
