// The runtime completes each "***" URL from the `--secrets-from` files by finding, anywhere in their
// text, the one URL with credentials that redacts to it (runtime/url-secrets.ts). It cannot tell two
// apart: an old proxy password in a commented-out line, or two mirrors on one host with different
// tokens, make the download fail. The generator has the same texts at hand and checks with the same
// index (credentialIndex), so the problem is reported at boot, naming the files, before any download.
import type { DownloadSettings, ImportRequest, SourcedUrl } from "./import-request.ts";
import type { LogLine } from "./log-line.ts";
import { credentialIndex, redactUrl } from "./redact.ts";

/** The URLs with credentials a request's download uses, each with the file it was set in. */
function secretUrls(request: ImportRequest, settings: DownloadSettings): SourcedUrl[] {
  const all: SourcedUrl[] = [{ url: request.remote, source: request.origin.path }, ...settings.mirrors];
  if (settings.httpsProxy) all.push(settings.httpsProxy);
  if (settings.httpProxy) all.push(settings.httpProxy);
  return all.filter((u) => redactUrl(u.url) !== u.url);
}

/**
 * One `err` line for each redacted URL the runtime will not be able to complete: no URL, or more
 * than one different URL, with credentials in the request's secret files redacts to it.
 *
 * @example checkSecretSources(requests, settings, new Map([["/etc/netimport/netimport.conf", text]]))
 *   // [{ level: "err", message: "https://***@proxy:3128 stands for 2 different URLs with credentials in …" }]
 */
export function checkSecretSources(requests: readonly ImportRequest[], settings: DownloadSettings, texts: ReadonlyMap<string, string>): LogLine[] {
  const index = new Map<string, Map<string, Set<string>>>();
  const urlsIn = (file: string): Map<string, Set<string>> => {
    let byShown = index.get(file);
    if (!byShown) {
      byShown = credentialIndex([texts.get(file) ?? ""]);
      index.set(file, byShown);
    }
    return byShown;
  };
  const log: LogLine[] = [];
  const reported = new Set<string>();
  for (const request of requests) {
    const uses = secretUrls(request, settings);
    const files = [...new Set(uses.map((u) => u.source))];
    for (const use of uses) {
      const shown = redactUrl(use.url);
      const key = `${shown}\n${files.join("\n")}`;
      if (reported.has(key)) continue;
      const matches = new Set(files.flatMap((file) => [...(urlsIn(file).get(shown) ?? [])]));
      if (matches.size === 1) continue;
      reported.add(key);
      const where = files.join(", ");
      log.push({
        level: "err",
        message: matches.size === 0
          ? `${shown} will not be found again in ${where} as the download reads it (quotes inside the URL?); the download of ${request.remote} will fail.`
          : `${shown} stands for ${matches.size} different URLs with credentials in ${where} (commented-out lines count too); the download of ${request.remote} will fail: keep one.`,
      });
    }
  }
  return log;
}
