// The undici dispatcher every request of one pull goes through: Node's bundled CAs plus an optional
// CA file, a proxy per scheme (with a no-proxy list), the idle timeout for connecting and for the
// response headers, and the DNS fallback for initrds without resolv.conf.
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import { redactUrl } from "../generator/redact.ts";
import type * as Undici from "undici";
import { Agent, DispatcherBase, EnvHttpProxyAgent, type Dispatcher } from "./undici-core.ts";
import { createServerLookup, DEFAULT_DNS_PATHS, fallbackDnsServers, type DnsPaths } from "./dns-fallback.ts";

export interface DispatcherOptions {
  /** PEM file with extra CA certificates, trusted in addition to Node's bundled ones. */
  caFile?: string;
  /** Proxy URL for http:// URLs; without it they go direct. */
  httpProxy?: string;
  /** Proxy URL for https:// URLs (tunnelled with CONNECT); without it they go direct. */
  httpsProxy?: string;
  /** Comma or space separated hosts (and domain suffixes) that bypass the proxies. */
  noProxy?: string;
  /** Connect and response-header timeout in milliseconds. */
  idleTimeoutMs: number;
  /** Files the DNS fallback reads. */
  dnsPaths?: DnsPaths;
}

/**
 * Builds the dispatcher for one pull; close it when done so keep-alive sockets do not hold the process.
 * Each request takes the proxy of its own URL's scheme, whether it is the image, a mirror, a checksum
 * file or where a redirect led. Throws on a CA file without a certificate or a proxy that is no URL.
 *
 * @example const dispatcher = createDispatcher({ idleTimeoutMs: 30000, caFile: "/etc/ca.pem", httpsProxy: "http://proxy:3128" });
 */
export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const tls: { ca?: string[]; lookup?: ReturnType<typeof createServerLookup> } = {};
  if (options.caFile) tls.ca = [...rootCertificates, ...readCaFile(options.caFile)];
  const servers = fallbackDnsServers(options.dnsPaths ?? DEFAULT_DNS_PATHS);
  if (servers) tls.lookup = createServerLookup(servers);
  const httpProxy = options.httpProxy && checkProxyUrl(options.httpProxy);
  const httpsProxy = options.httpsProxy && checkProxyUrl(options.httpsProxy);
  const common = {
    connectTimeout: options.idleTimeoutMs,
    headersTimeout: options.idleTimeoutMs,
    // Our own idle timer watches the body, so that time spent waiting for a slow sink never counts.
    bodyTimeout: 0,
  };
  const direct = () => new Agent({ ...common, connect: tls });
  // Both proxies and the no-proxy list always given: undici takes an absent one from the process
  // environment (http_proxy, https_proxy, no_proxy), and only the configuration may decide.
  const proxied = (http: string, https: string) => new EnvHttpProxyAgent({
    ...common,
    httpProxy: http,
    httpsProxy: https,
    noProxy: options.noProxy ?? "",
    connect: tls,
    proxyTls: tls.lookup ? { lookup: tls.lookup } : {},
    requestTls: tls.ca ? { ca: tls.ca } : {},
  });
  if (!httpProxy && !httpsProxy) return direct();
  if (httpProxy && httpsProxy) return proxied(httpProxy, httpsProxy);
  // One scheme proxied: EnvHttpProxyAgent sends https:// through the http proxy when it has no https
  // one, so the other scheme gets an agent of its own that goes direct.
  return new SchemeRouter({
    "http:": httpProxy ? proxied(httpProxy, httpProxy) : direct(),
    "https:": httpsProxy ? proxied(httpsProxy, httpsProxy) : direct(),
  });
}

const PROXY_SCHEMES = ["http:", "https:", "socks5:", "socks:"];

/** `url` when it is a proxy URL undici can use; else an error that shows it without its userinfo. */
function checkProxyUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`invalid proxy URL ${redactUrl(url)}`);
  }
  if (!PROXY_SCHEMES.includes(parsed.protocol)) {
    throw new Error(`invalid proxy URL ${redactUrl(url)}: expected http://, https:// or socks5://`);
  }
  return url;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^]*?-----END CERTIFICATE-----/g;
const BEGIN_CERTIFICATE = /-----BEGIN CERTIFICATE-----/g;

/**
 * The PEM certificates of a CA file, each checked to parse: a file that holds none (garbage, an empty
 * file, a key), or a certificate block that does not parse, would otherwise be trusted silently as
 * nothing, and every HTTPS request would then fail as "unable to verify" far from the cause.
 *
 * @example readCaFile("/etc/netimport/ca.pem") // ["-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----"]
 */
export function readCaFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new Error(`cannot read CA file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const blocks = [...text.matchAll(PEM_CERTIFICATE)];
  const begins = [...text.matchAll(BEGIN_CERTIFICATE)];
  const lineAt = (index: number) => text.slice(0, index).split("\n").length;
  // A BEGIN line whose block never ends is not counted as a block: name it.
  const unended = begins.find((begin) => !blocks.some((block) => block.index === begin.index));
  if (unended) {
    throw new Error(`CA file ${path}: the certificate at line ${lineAt(unended.index)} has no END CERTIFICATE line`);
  }
  if (blocks.length === 0) throw new Error(`CA file ${path} holds no PEM certificate`);
  return blocks.map((block, i) => {
    try {
      new X509Certificate(block[0]);
    } catch (error) {
      throw new Error(`CA file ${path}: certificate ${i + 1} of ${blocks.length} (line ${lineAt(block.index)}) does not parse: ${(error as Error).message}`);
    }
    return block[0];
  });
}

/** Sends each request to the dispatcher of its URL's scheme. */
class SchemeRouter extends DispatcherBase {
  readonly #byScheme: Record<"http:" | "https:", Dispatcher>;

  constructor(byScheme: Record<"http:" | "https:", Dispatcher>) {
    super();
    this.#byScheme = byScheme;
  }

  override dispatch(options: Undici.Dispatcher.DispatchOptions, handler: Undici.Dispatcher.DispatchHandler): boolean {
    const scheme = new URL(String(options.origin)).protocol === "https:" ? "https:" : "http:";
    return this.#byScheme[scheme].dispatch(options, handler);
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const closed = Promise.all(Object.values(this.#byScheme).map((d) => d.close())).then(() => undefined);
    if (!callback) return closed;
    void closed.then(callback, callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const err = typeof errOrCallback === "function" ? null : errOrCallback ?? null;
    const done = typeof errOrCallback === "function" ? errOrCallback : callback;
    const destroyed = Promise.all(Object.values(this.#byScheme).map((d) => d.destroy(err))).then(() => undefined);
    if (!done) return destroyed;
    void destroyed.then(done, done);
  }
}
