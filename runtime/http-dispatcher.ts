// The undici dispatcher every request of one pull goes through: Node's bundled CAs plus an optional
// CA file, an optional proxy (with a no-proxy list), the idle timeout for connecting and for the
// response headers, and the DNS fallback for initrds without resolv.conf.
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import { Agent, EnvHttpProxyAgent, type Dispatcher } from "./undici-core.ts";
import { createServerLookup, DEFAULT_DNS_PATHS, fallbackDnsServers, type DnsPaths } from "./dns-fallback.ts";

export interface DispatcherOptions {
  /** PEM file with extra CA certificates, trusted in addition to Node's bundled ones. */
  caFile?: string;
  /** Proxy URL for http and https. */
  proxy?: string;
  /** Comma or space separated hosts (and domain suffixes) that bypass the proxy. */
  noProxy?: string;
  /** Connect and response-header timeout in milliseconds. */
  idleTimeoutMs: number;
  /** Files the DNS fallback reads. */
  dnsPaths?: DnsPaths;
}

/**
 * Builds the dispatcher for one pull; close it when done so keep-alive sockets do not hold the process.
 *
 * @example const dispatcher = createDispatcher({ idleTimeoutMs: 30000, caFile: "/etc/ca.pem" });
 */
export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const tls: { ca?: string[]; lookup?: ReturnType<typeof createServerLookup> } = {};
  if (options.caFile) {
    let extra: string;
    try {
      extra = readFileSync(options.caFile, "utf8");
    } catch (error) {
      throw new Error(`cannot read CA file ${options.caFile}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    tls.ca = [...rootCertificates, extra];
  }
  const servers = fallbackDnsServers(options.dnsPaths ?? DEFAULT_DNS_PATHS);
  if (servers) tls.lookup = createServerLookup(servers);
  const common = {
    connectTimeout: options.idleTimeoutMs,
    headersTimeout: options.idleTimeoutMs,
    // Our own idle timer watches the body, so that time spent waiting for a slow sink never counts.
    bodyTimeout: 0,
  };
  if (options.proxy) {
    return new EnvHttpProxyAgent({
      ...common,
      httpProxy: options.proxy,
      httpsProxy: options.proxy,
      noProxy: options.noProxy ?? "",
      connect: tls,
      proxyTls: tls.lookup ? { lookup: tls.lookup } : {},
      requestTls: tls.ca ? { ca: tls.ca } : {},
    });
  }
  return new Agent({ ...common, connect: tls });
}
