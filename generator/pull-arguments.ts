// The `netimport pull` command line of one request: everything the download needs, so that reading
// the unit tells what will happen, except the credentials in URLs. A URL with a user name or password
// is written with "***" in their place (redact.ts), and `--secrets-from=FILE` names each file such a
// URL was configured in; the runtime completes the URL from there (runtime/url-secrets.ts).
import { localPath, type DownloadSettings, type ImportRequest } from "./import-request.ts";
import { redactUrl } from "./redact.ts";
import { lazyDeviceLink, lazyPidFile } from "./unit-names.ts";

export interface PullArguments {
  /** argv, executable first; no word holds a credential. */
  args: string[];
  /** The files the runtime reads the redacted URLs' credentials from, in the order first needed. */
  secretFiles: string[];
}

/**
 * Proxies go by the scheme of each request, not of the image URL: an http image may have https
 * mirrors and be redirected to https, so both proxies are passed when both are configured.
 *
 * @example pullArguments(request, { mirrors: [{ url: "https://u:p@m/", source: "/etc/netimport/netimport.conf" }] }, exe)
 *   // { args: [exe, "pull", …, "--mirror=https://***@m/", "--secrets-from=/etc/netimport/netimport.conf", URL, DEST],
 *   //   secretFiles: ["/etc/netimport/netimport.conf"] }
 */
export function pullArguments(request: ImportRequest, settings: DownloadSettings, executable: string): PullArguments {
  const secretFiles: string[] = [];
  const show = (url: string, source: string): string => {
    const shown = redactUrl(url);
    if (shown !== url && !secretFiles.includes(source)) secretFiles.push(source);
    return shown;
  };

  const args = [executable, "pull", `--type=${request.type}`, `--verify=${request.verify}`];
  if (request.readOnly) args.push("--ro");
  if (settings.keyring && request.verify === "signature") args.push(`--keyring=${settings.keyring}`);
  for (const mirror of settings.mirrors) args.push(`--mirror=${show(mirror.url, mirror.source)}`);
  if (settings.caFile) args.push(`--ca-file=${settings.caFile}`);
  if (settings.idleTimeoutSec !== undefined) args.push(`--idle-timeout=${settings.idleTimeoutSec}`);
  if (settings.retries !== undefined) args.push(`--retries=${settings.retries}`);
  if (settings.httpsProxy) args.push(`--https-proxy=${show(settings.httpsProxy.url, settings.httpsProxy.source)}`);
  if (settings.httpProxy) args.push(`--http-proxy=${show(settings.httpProxy.url, settings.httpProxy.source)}`);
  if ((settings.httpsProxy || settings.httpProxy) && settings.noProxy) args.push(`--no-proxy=${settings.noProxy}`);
  if (settings.imageMemoryMax !== undefined) args.push(`--image-memory-max=${settings.imageMemoryMax}`);
  const url = show(request.remote, request.origin.path);
  for (const file of secretFiles) args.push(`--secrets-from=${file}`);
  args.push(url, localPath(request));
  return { args, secretFiles };
}

/** Where a lazy image is copied: `[Lazy] CopyDirectory=`/NAME.raw, else where a pull would put it. */
export function lazyCopyPath(request: ImportRequest, settings: DownloadSettings): string {
  return settings.lazyCopyDirectory ? `${settings.lazyCopyDirectory.replace(/\/+$/, "")}/${request.local}.raw` : localPath(request);
}

/**
 * `netimport lazy`'s command line: the pull's options (the same download settings, verification and
 * secrets handling), then where to link the NBD device and write the PID file, and the outage limit.
 *
 * @example lazyArguments(request, settings, exe).args
 *   // [exe, "lazy", "--type=raw", "--verify=no", "--device-link=/run/netimport/lazy/os.nbd", "--pid-file=…", URL, DEST]
 */
export function lazyArguments(request: ImportRequest, settings: DownloadSettings, executable: string): PullArguments {
  const pull = pullArguments(request, settings, executable);
  const [, , ...options] = pull.args.slice(0, -2);
  const [url] = pull.args.slice(-2) as [string, string];
  const lazy = [`--device-link=${lazyDeviceLink(request)}`, `--pid-file=${lazyPidFile(request)}`];
  if (settings.lazyOutageLimitSec !== undefined) lazy.push(`--outage-limit=${settings.lazyOutageLimitSec}`);
  return { args: [executable, "lazy", ...options, ...lazy, url, lazyCopyPath(request, settings)], secretFiles: pull.secretFiles };
}
