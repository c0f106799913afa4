// The HTTP client of a pull: GET requests for the image, its checksum and signature files, and
// wherever they redirect. Direct connections use our own HTTP/1.1 response reader (http1-response.ts)
// on net/tls sockets that read into memory we provide (`onread`), with no socket stream or parser
// machinery in between. Proxied requests (CONNECT tunnels, proxy credentials, socks5) go through
// undici's public API (http-proxy.ts), loaded only when a proxy is configured.
//
// One request per connection (`Connection: close`): a pull makes a handful of requests (checksum
// file, signature, the image, redirects), often to different hosts, and the image's transfer dwarfs a
// handshake. Keep-alive would need a pool, idle-socket expiry, and retrying a request that raced the
// server closing an idle socket, for the saving of one handshake per small file. It also lets a body
// without a length end at EOF, and makes dump() and destroy() the same thing.
//
// Memory: reads go into slabs allocated here, each read into the rest of the current slab, and body
// chunks are subarrays of them. A slab is never written again once a read landed in it, so a consumer
// may hold chunks as long as it likes (zlib, a child's stdin, an async file write); the GC frees a
// slab when its last chunk goes. Chunks share their ArrayBuffer: never transfer or detach
// `chunk.buffer`. When the body's buffer is full the socket stops reading, and reads again when the
// consumer asks for more: a slow sink holds the server back through TCP instead of filling memory.
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect as netConnect, isIP, type LookupFunction, type Socket } from "node:net";
import { finished, Readable } from "node:stream";
import { connect as tlsConnect, createSecureContext, rootCertificates, type SecureContext } from "node:tls";
import { DEFAULT_DNS_PATHS, fallbackLookup, type DnsPaths } from "./dns-fallback.ts";
import { Http1ResponseParser, type Headers, type ResponseHead } from "./http1-response.ts";
import { createProxyRoute, type ProxyRoute } from "./http-proxy.ts";

export interface HttpClientOptions {
  /** PEM file with extra CA certificates, trusted in addition to Node's bundled ones. */
  caFile?: string;
  /** Proxy URL for http:// URLs; without it they go direct. */
  httpProxy?: string;
  /** Proxy URL for https:// URLs (tunnelled with CONNECT); without it they go direct. */
  httpsProxy?: string;
  /** Comma or space separated hosts (and domain suffixes) that bypass the proxies. */
  noProxy?: string;
  /** Connect timeout, and how long the response headers may take once the request is sent, in ms. */
  idleTimeoutMs: number;
  /** Files the DNS fallback reads. */
  dnsPaths?: DnsPaths;
  /**
   * Resolves host names for every connection (direct, and to the proxies) instead of the system
   * resolver and the DNS fallback, which are then not consulted (the lazy image's pinned lookup).
   */
  lookup?: LookupFunction;
}

export interface RequestInit {
  headers: Record<string, string>;
  /** Aborts the connect, the wait for the headers, and the body (which then fails with the reason). */
  signal?: AbortSignal;
}

/** A body: iterate it, or destroy() it (closes the connection at once), or dump() it (never rejects). */
export type ResponseBody = Readable & { dump(): Promise<void> };

export interface HttpResponse {
  statusCode: number;
  /** Lower-case names; a header sent more than once is an array. */
  headers: Headers;
  body: ResponseBody;
}

export interface HttpClient {
  /** A GET of `url`; resolves with the response head, the body streams after. */
  request(url: string, init: RequestInit): Promise<HttpResponse>;
  /** Closes every connection still open, and the proxy agents. */
  close(): Promise<void>;
}

/**
 * Reads go into slabs this large, each read into the rest of the current one, a new one when less than
 * MIN_READ_BYTES is left. Small slabs keep memory down: V8 frees dead slabs on a schedule driven by
 * JavaScript allocation, so the fewer reads per byte, the more dead slabs wait for it. Receiving 1 GiB
 * from nginx on loopback (--max-semi-space-size=1): 64 KiB slabs 94-102 MiB RSS, 128 KiB 120-127,
 * 256 KiB 137-160, 2 MiB 133-216, for a few percent less CPU time (undici: 106-117 MiB).
 */
const SLAB_BYTES = 64 << 10;
const MIN_READ_BYTES = 16 << 10;
/** What a body buffers ahead of its consumer before the socket stops reading. */
const BODY_HIGH_WATER_MARK = 1 << 20;

/** Where a read goes once the exchange is over (and its bytes are ignored): no new slab for it. */
const SPENT = Buffer.alloc(64);

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * The client for one pull; close it when done. Each request takes the proxy of its own URL's scheme
 * (when configured and the host is not in `noProxy`), whether it is the image, a mirror, a checksum
 * file or where a redirect led. Throws on a CA file without a certificate or a proxy that is no URL.
 *
 * @example
 * const client = createHttpClient({ idleTimeoutMs: 30000, caFile: "/etc/ca.pem" });
 * const { statusCode, body } = await client.request("https://example.org/os.raw", { headers: {} });
 * for await (const chunk of body) …;
 * await client.close();
 */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  const ca = options.caFile ? [...rootCertificates, ...readCaFile(options.caFile)] : undefined;
  const lookup = options.lookup ?? fallbackLookup(options.dnsPaths ?? DEFAULT_DNS_PATHS);
  const proxies: ProxyRoute | undefined = createProxyRoute({
    httpProxy: options.httpProxy, httpsProxy: options.httpsProxy, noProxy: options.noProxy,
    idleTimeoutMs: options.idleTimeoutMs, ca, lookup,
  });
  // Made once: building a context from ~150 root certificates takes milliseconds.
  let secureContext: SecureContext | undefined;
  const connection = {
    timeoutMs: options.idleTimeoutMs,
    lookup,
    secureContext: () => (secureContext ??= createSecureContext(ca ? { ca } : {})),
  };
  const open = new Set<Exchange>();
  return {
    async request(url, init) {
      const parsed = new URL(url);
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
        throw new TypeError(`cannot request ${url}: not an http:// or https:// URL`);
      }
      checkHeaders(init.headers);
      if (init.signal?.aborted) throw init.signal.reason;
      if (proxies?.covers(parsed)) return proxies.request(parsed, init);
      return new Exchange(url, parsed, init, connection, open).response;
    },
    async close() {
      for (const exchange of open) exchange.close(new Error("HTTP client closed"));
      await proxies?.close();
    },
  };
}

function checkHeaders(headers: Record<string, string>): void {
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name) || /[\0\r\n]/.test(value)) throw new TypeError(`invalid request header ${JSON.stringify(name)}`);
  }
}

interface ConnectionOptions {
  timeoutMs: number;
  lookup: LookupFunction | undefined;
  secureContext(): SecureContext;
}

/** One request and its response on a connection of its own. */
class Exchange {
  readonly response: Promise<HttpResponse>;
  readonly #url: string;
  readonly #socket: Socket;
  readonly #parser: Http1ResponseParser;
  readonly #open: Set<Exchange>;
  readonly #signal: AbortSignal | undefined;
  #resolve!: (response: HttpResponse) => void;
  #reject!: (error: unknown) => void;
  #body: Body | undefined;
  /** The response promise is settled. */
  #settled = false;
  /** The body is complete, or failed, or the request failed: nothing more to do but close. */
  #over = false;
  /** The socket stopped reading because the body's buffer is full. */
  #paused = false;
  /** The rest of the current slab, where the next read goes (undefined: a new slab). */
  #rest: Buffer | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #onAbort = () => this.#fail(this.#signal!.reason);

  /** `href` as the caller wrote it, for messages: `url` parsed. */
  constructor(href: string, url: URL, init: RequestInit, connection: ConnectionOptions, open: Set<Exchange>) {
    this.#url = href;
    this.#open = open;
    this.#signal = init.signal;
    this.response = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#parser = new Http1ResponseParser(this.#url, {
      onHead: (head) => this.#onHead(head),
      onBody: (chunk) => {
        if (!this.#body!.push(chunk)) this.#paused = true;
      },
      onEnd: () => this.#onEnd(),
    });

    const https = url.protocol === "https:";
    const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
    const port = Number(url.port) || (https ? 443 : 80);
    const onread = {
      buffer: () => (this.#over ? SPENT : this.#rest ?? Buffer.allocUnsafeSlow(SLAB_BYTES)),
      callback: (nread: number, buffer: Uint8Array) => this.#onRead(nread, buffer as Buffer),
    };
    const common = { host, port, onread, ...(connection.lookup ? { lookup: connection.lookup } : {}) };
    this.#socket = https
      ? tlsConnect({
        ...common,
        secureContext: connection.secureContext(),
        ...(isIP(host) ? {} : { servername: host }),
        ALPNProtocols: ["http/1.1"],
      })
      : netConnect(common);
    open.add(this);
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });

    const timeoutMs = connection.timeoutMs;
    this.#timer = setTimeout(() => this.#fail(new Error(`no connection to ${url.host} within ${timeoutMs / 1000} s for ${this.#url}`)), timeoutMs);
    // `url.host` is what Host must say: the port only when it is not the scheme's default.
    const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`];
    for (const [name, value] of Object.entries(init.headers)) lines.push(`${name}: ${value}`);
    lines.push("connection: close", "", "");
    this.#socket.once(https ? "secureConnect" : "connect", () => {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.#fail(new Error(`no response headers within ${timeoutMs / 1000} s from ${this.#url}`)), timeoutMs);
      this.#socket.write(lines.join("\r\n"), "latin1");
    });
    this.#socket.on("error", (error) => this.#fail(error));
    this.#socket.on("end", () => {
      try {
        this.#parser.finish();
      } catch (error) {
        this.#fail(error);
      }
    });
    this.#socket.on("close", () => this.#fail(new Error(`connection closed from ${this.#url}`)));
  }

  /** Takes one read: `nread` bytes at the start of `buffer`. False stops the socket reading. */
  #onRead(nread: number, buffer: Buffer): boolean {
    // The bytes just read are never written again: the next read goes after them, or into a new slab.
    this.#rest = buffer.length - nread >= MIN_READ_BYTES ? buffer.subarray(nread) : undefined;
    if (this.#over) return false;
    try {
      this.#parser.execute(buffer.subarray(0, nread));
    } catch (error) {
      this.#fail(error);
      return false;
    }
    return !this.#paused;
  }

  #onHead(head: ResponseHead): void {
    clearTimeout(this.#timer);
    this.#body = new Body(this);
    this.#settled = true;
    this.#resolve({ statusCode: head.statusCode, headers: head.headers, body: this.#body });
  }

  #onEnd(): void {
    this.#body!.push(null);
    // The body keeps what it buffered for its consumer; the connection has nothing more to give.
    this.#finish();
  }

  /** The body wants more: read again if we stopped. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (!this.#over) this.#socket.resume();
  }

  /** The body will not be read to its end (destroyed or dumped): close the connection. */
  abandon(): void {
    this.#finish();
  }

  /** The whole body was received. */
  get complete(): boolean {
    return this.#parser.done;
  }

  /** The client is closed: fail whatever is still going on. */
  close(error: Error): void {
    this.#fail(error);
  }

  /** A failure: rejects the response, or fails the body, unless it is over already. */
  #fail(error: unknown): void {
    if (this.#over) return;
    if (!this.#settled) {
      this.#settled = true;
      this.#reject(error);
    } else {
      this.#body!.destroy(error as Error);
    }
    this.#finish();
  }

  /** Nothing more to read: close the connection and let go of the timer, the signal and the client. */
  #finish(): void {
    if (this.#over) return;
    this.#over = true;
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#open.delete(this);
    this.#socket.destroy();
  }
}

/** A response body: chunks of our slabs, read as the consumer asks. */
class Body extends Readable {
  readonly #exchange: Exchange;

  constructor(exchange: Exchange) {
    super({ highWaterMark: BODY_HIGH_WATER_MARK });
    this.#exchange = exchange;
    // A body that fails before its consumer listens (between the response and the first read) must
    // not take the process down as an unhandled 'error'; a reader still gets the error.
    this.on("error", () => undefined);
  }

  override _read(): void {
    this.#exchange.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#exchange.abandon();
    callback(error);
  }

  /**
   * Discards the rest. What is already here is drained; what is still to come is not waited for: the
   * connection serves this one request, so reading the rest of, say, a large error page would only
   * wait on the server for nothing.
   */
  dump(): Promise<void> {
    if (this.destroyed || this.readableEnded) return Promise.resolve();
    return new Promise((resolve) => {
      finished(this, () => resolve());
      if (this.#exchange.complete) this.resume();
      else this.destroy();
    });
  }
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
