// Requests through a proxy, where undici earns its place: HTTP proxies with CONNECT tunnels for
// https://, credentials from the proxy URL's userinfo, socks5. Only undici's public API, imported when
// the first proxied request is made: a pull without proxies never evaluates undici.
//
// Each request whose URL's scheme has a proxy goes to undici's EnvHttpProxyAgent, which sends it through
// that proxy, or direct when its host is in the no-proxy list; a scheme without a proxy goes direct,
// through http-client.ts. The agent is given both proxies and the no-proxy list explicitly: undici would
// otherwise take an absent one from the process environment (http_proxy, https_proxy, no_proxy), and
// only the configuration may decide.
import type { LookupFunction } from "node:net";
import type * as Undici from "undici";
import { redactUrl } from "../generator/redact.ts";
import type { HttpResponse, RequestInit, ResponseBody } from "./http-client.ts";

export interface ProxyOptions {
  httpProxy?: string;
  httpsProxy?: string;
  /** Comma or space separated hosts (`host`, `host:port`, `.domain`, `*.domain`, `*`). */
  noProxy?: string;
  /** Connect and response-header timeout in milliseconds (the body's idle timeout is the caller's). */
  idleTimeoutMs: number;
  /** The CA certificates to trust for the servers (undefined: Node's bundled ones). */
  ca?: string[];
  /** DNS fallback for the proxy's (and the servers') host names. */
  lookup?: LookupFunction;
}

export interface ProxyRoute {
  /** Whether `url` goes through a proxy. */
  covers(url: URL): boolean;
  request(url: URL, init: RequestInit): Promise<HttpResponse>;
  close(): Promise<void>;
}

const PROXY_SCHEMES = ["http:", "https:", "socks5:", "socks:"];

/**
 * The proxy route of a client, or undefined when no proxy is configured. Throws on a proxy that is
 * no URL undici can use, naming it without its userinfo.
 *
 * @example createProxyRoute({ httpsProxy: "http://proxy:3128", noProxy: ".internal", idleTimeoutMs: 30000 })
 */
export function createProxyRoute(options: ProxyOptions): ProxyRoute | undefined {
  const httpProxy = options.httpProxy ? checkProxyUrl(options.httpProxy) : undefined;
  const httpsProxy = options.httpsProxy ? checkProxyUrl(options.httpsProxy) : undefined;
  if (!httpProxy && !httpsProxy) return undefined;
  let agent: Promise<Undici.Dispatcher> | undefined;
  const load = async (): Promise<Undici.Dispatcher> => {
    const { EnvHttpProxyAgent } = await import("undici");
    return new EnvHttpProxyAgent({
      // A scheme without a proxy never gets here, so the other scheme's proxy stands in for it.
      httpProxy: httpProxy ?? httpsProxy,
      httpsProxy: httpsProxy ?? httpProxy,
      noProxy: options.noProxy ?? "",
      connectTimeout: options.idleTimeoutMs,
      headersTimeout: options.idleTimeoutMs,
      // The caller's idle timer watches the body, so that time spent waiting for a slow sink never counts.
      bodyTimeout: 0,
      connect: { ...(options.ca ? { ca: options.ca } : {}), ...(options.lookup ? { lookup: options.lookup } : {}) },
      proxyTls: options.lookup ? { lookup: options.lookup } : {},
      requestTls: options.ca ? { ca: options.ca } : {},
    });
  };
  return {
    covers(url) {
      const proxy = url.protocol === "https:" ? httpsProxy : httpProxy;
      return proxy !== undefined;
    },
    async request(url, init) {
      const dispatcher = await (agent ??= load());
      const { statusCode, headers, body } = await dispatcher.request({
        origin: url.origin, path: `${url.pathname}${url.search}`, method: "GET", headers: init.headers, signal: init.signal,
      });
      // undici's body is a Readable with dump() (which reads at most 128 KiB, then destroys).
      return { statusCode, headers, body: body as unknown as ResponseBody };
    },
    async close() {
      if (agent) await (await agent).destroy();
    },
  };
}

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
