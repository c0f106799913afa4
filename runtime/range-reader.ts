// Byte ranges of one remote image, for the lazy image (lazy-image.ts): each read is one
// `Range: bytes=a-b` request with `If-Range`, answered by a 206 of exactly those bytes of exactly
// the file the reader opened, or it fails. No retries and no sleeping here: the lazy image decides
// how long a read may wait for the server (it must answer the block device within its limits, and
// its hydrator must never give up), so a read makes one attempt per candidate URL and says whether
// another attempt can help (HttpError.retryable) or whether the image changed (ImageChangedError,
// which no retry can help).
//
// The reader runs on after switch-root, when the initrd's files are deleted: /etc/resolv.conf,
// /etc/hosts and the DNS fallback's lease files are gone, and a fresh lookup of the server's name
// fails. So every host's addresses are pinned: the first answer is remembered and used whenever a
// later lookup fails.
import { lookup as systemLookup, type LookupAddress, type LookupOptions } from "node:dns";
import { isIP, type LookupFunction } from "node:net";
import { redactSecrets, redactUrl } from "../generator/redact.ts";
import { DEFAULT_DNS_PATHS, fallbackLookup, type DnsPaths } from "./dns-fallback.ts";
import { createHttpClient, type HttpClient, type HttpResponse, type ResponseBody } from "./http-client.ts";
import type { Headers } from "./http1-response.ts";
import { CandidatesError, header, HttpError, networkError, requestFollowingRedirects, statusError } from "./http-source.ts";
import { candidateUrls } from "./mirrors.ts";

export interface RangeReaderOptions {
  /** Base URLs tried, in order, after the URL itself (as for a pull). */
  mirrors?: readonly string[];
  /** Connect timeout, wait for the response headers, and longest silence in a body, in ms (default 30 s). */
  idleTimeoutMs?: number;
  caFile?: string;
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
  /** Files the DNS fallback reads (when `resolve` is not given). */
  dnsPaths?: DnsPaths;
  /** The resolver whose answers are pinned; default: the system's, or the DNS fallback's servers. */
  resolve?: LookupFunction;
  /** How long a pinned answer is used without asking the resolver again, in ms (default 60 s). */
  reresolveAfterMs?: number;
  /** Redirects followed per request (default 10). */
  maxRedirects?: number;
  /** Aborts the probe of openRangeReader(). */
  signal?: AbortSignal;
}

export interface RangeReader {
  /** The candidate URL (the URL or a mirror) reads go to now, with any password replaced by "***". */
  readonly url: string;
  /** Bytes of the image, from the probe's Content-Range. */
  readonly size: number;
  /** What `If-Range` sends to the URL that answered the probe: its strong ETag, else its Last-Modified date. */
  readonly validator: string;
  /** Bytes received in complete reads. */
  readonly fetchedBytes: number;
  /**
   * Exactly bytes `offset` to `offset + length - 1` of the image. Throws ImageChangedError when the
   * server's file is no longer the one opened, else an HttpError (`retryable` says whether trying
   * again later can help), or the signal's reason.
   */
  read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
  /** Aborts the reads in flight and closes their connections. */
  close(): Promise<void>;
}

/** The file on the server is no longer the one the reader opened: its bytes cannot be mixed with those read before. */
export class ImageChangedError extends Error {
  readonly url: string;
  constructor(message: string, url: string) {
    super(message);
    this.name = "ImageChangedError";
    this.url = url;
  }
}

/** `If-Range` for one candidate URL: each server has validators of its own (a mirror's ETag is not the origin's). */
interface Validator {
  name: "etag" | "last-modified";
  value: string;
}

interface Candidate {
  /** As configured (may carry credentials). */
  href: string;
  /** For messages. */
  shown: string;
  /** Learnt from the first 206 this candidate sent; until then a read asks without If-Range. */
  validator: Validator | undefined;
}

/**
 * Opens the image at `url` (or a mirror) for range reads: one `Range: bytes=0-0` request to each
 * candidate in order, until one answers 206 with the image's size and a validator. Throws when none
 * does: an HttpError (`retryable` when some candidate may answer later), naming each candidate's
 * failure; "… does not support HTTP Range requests, which lazy needs" for a server that answers 200.
 *
 * @example
 * const reader = await openRangeReader("https://example.org/os.raw", { mirrors: ["https://m/"] });
 * const superblock = await reader.read(1024, 1024);
 * await reader.close();
 */
export async function openRangeReader(url: string, options: RangeReaderOptions = {}): Promise<RangeReader> {
  const idleTimeoutMs = options.idleTimeoutMs ?? 30000;
  const resolver = pinLookups(options.resolve ?? defaultResolver(options.dnsPaths ?? DEFAULT_DNS_PATHS), options.reresolveAfterMs ?? 60000);
  const client = createHttpClient({
    idleTimeoutMs, caFile: options.caFile, httpProxy: options.httpProxy, httpsProxy: options.httpsProxy,
    noProxy: options.noProxy, lookup: resolver.lookup,
  });
  const candidates: Candidate[] = candidateUrls(url, options.mirrors).map((href) => ({ href, shown: redactUrl(href), validator: undefined }));
  // Every candidate's host now, while the initrd can still resolve names: a mirror may be needed only
  // after switch-root. Hosts reached through a proxy or a redirect are pinned on their first connection.
  await Promise.all(candidates.map((candidate) => resolver.pin(new URL(candidate.href).hostname)));
  const reader = new HttpRangeReader(client, candidates, { idleTimeoutMs, maxRedirects: options.maxRedirects ?? 10 });
  try {
    await reader.probe(options.signal);
  } catch (error) {
    await client.close();
    throw error;
  }
  return reader;
}

class HttpRangeReader implements RangeReader {
  readonly #client: HttpClient;
  readonly #candidates: Candidate[];
  readonly #idleTimeoutMs: number;
  readonly #maxRedirects: number;
  readonly #closing = new AbortController();
  /** The candidate reads start with: the last one that answered. */
  #current = 0;
  #size = 0;
  #fetched = 0;

  constructor(client: HttpClient, candidates: Candidate[], options: { idleTimeoutMs: number; maxRedirects: number }) {
    this.#client = client;
    this.#candidates = candidates;
    this.#idleTimeoutMs = options.idleTimeoutMs;
    this.#maxRedirects = options.maxRedirects;
  }

  get url(): string {
    return this.#candidates[this.#current]!.shown;
  }

  get size(): number {
    return this.#size;
  }

  get validator(): string {
    return this.#candidates[this.#current]!.validator?.value ?? "";
  }

  get fetchedBytes(): number {
    return this.#fetched;
  }

  /** Finds the first candidate that serves ranges of the image: its size and validator. */
  async probe(signal: AbortSignal | undefined): Promise<void> {
    const failures: HttpError[] = [];
    for (const [index, candidate] of this.#candidates.entries()) {
      try {
        this.#size = await this.#probe(candidate, signal);
        this.#current = index;
        return;
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        failures.push(shown(networkError(error, candidate.href)));
      }
    }
    throw combined(failures);
  }

  async #probe(candidate: Candidate, signal: AbortSignal | undefined): Promise<number> {
    const { url, response } = await this.#get(candidate, { range: "bytes=0-0" }, signal);
    const shownUrl = redactUrl(url);
    const { statusCode, headers, body } = response;
    const unsupported = (what: string) =>
      new HttpError(`${shownUrl} does not support HTTP Range requests, which lazy needs: ${what}`, shownUrl, { retryable: false });
    if (statusCode === 200) {
      body.destroy();
      throw unsupported("it answered a request for byte 0 with the whole file");
    }
    if (statusCode === 416) {
      await body.dump();
      throw new HttpError(`${shownUrl} is empty (HTTP 416 for byte 0): there is no image to boot`, shownUrl, { retryable: false });
    }
    if (statusCode !== 206) {
      await body.dump();
      throw statusError(statusCode, shownUrl);
    }
    await body.dump();
    const contentRange = header(headers, "content-range");
    const size = Number(/^bytes 0-0\/(\d+)$/.exec(contentRange ?? "")?.[1]);
    if (!Number.isSafeInteger(size) || size < 1) {
      throw unsupported(`its answer to a request for byte 0 has Content-Range '${contentRange ?? "(none)"}', which names no size`);
    }
    candidate.validator = validatorOf(headers);
    if (!candidate.validator) {
      throw new HttpError(
        `${shownUrl} sends neither a strong ETag nor a Last-Modified date: lazy could not tell whether the image changes between two reads`,
        shownUrl, { retryable: false },
      );
    }
    return size;
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 1 || offset + length > this.#size) {
      throw new RangeError(`cannot read ${length} bytes at ${offset} of an image of ${this.#size} bytes`);
    }
    const abort = signal ? AbortSignal.any([signal, this.#closing.signal]) : this.#closing.signal;
    const failures: HttpError[] = [];
    // The candidate that answered last first; the others (each once) when it fails.
    for (let i = 0; i < this.#candidates.length; i++) {
      const index = (this.#current + i) % this.#candidates.length;
      const candidate = this.#candidates[index]!;
      try {
        const data = await this.#readFrom(candidate, offset, length, abort);
        this.#current = index;
        this.#fetched += length;
        return data;
      } catch (error) {
        if (abort.aborted) throw abort.reason;
        if (error instanceof ImageChangedError) throw error;
        failures.push(shown(networkError(error, candidate.href)));
      }
    }
    throw combined(failures);
  }

  async #readFrom(candidate: Candidate, offset: number, length: number, signal: AbortSignal): Promise<Buffer> {
    const last = offset + length - 1;
    const asked = `bytes=${offset}-${last}`;
    const sent = candidate.validator;
    const { url, response } = await this.#get(candidate, sent ? { range: asked, "if-range": sent.value } : { range: asked }, signal);
    const shownUrl = redactUrl(url);
    const { statusCode, headers, body } = response;
    if (statusCode === 200) {
      body.destroy();
      // With If-Range a server sends the whole file exactly when the validator no longer matches.
      if (sent) throw new ImageChangedError(`${shownUrl} changed on the server: it answered ${asked} with If-Range ${sent.value} with the whole file`, shownUrl);
      throw new HttpError(`${shownUrl} does not support HTTP Range requests, which lazy needs: it answered ${asked} with the whole file`, shownUrl, { retryable: false });
    }
    if (statusCode === 416) {
      await body.dump();
      const total = /^bytes \*\/(\d+)$/.exec(header(headers, "content-range") ?? "")?.[1];
      if (total !== undefined && Number(total) !== this.#size) {
        throw new ImageChangedError(`${shownUrl} changed on the server: it has ${total} bytes now, not ${this.#size}`, shownUrl);
      }
      throw new HttpError(`HTTP 416 Range Not Satisfiable from ${shownUrl} for ${asked} of ${this.#size} bytes`, shownUrl, { retryable: false });
    }
    if (statusCode !== 206) {
      await body.dump();
      throw statusError(statusCode, shownUrl);
    }
    const contentRange = header(headers, "content-range") ?? "";
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange);
    if (range && range[3] !== "*" && Number(range[3]) !== this.#size) {
      body.destroy();
      throw new ImageChangedError(`${shownUrl} changed on the server: it has ${range[3]} bytes now, not ${this.#size}`, shownUrl);
    }
    if (!range || Number(range[1]) !== offset || Number(range[2]) !== last) {
      body.destroy();
      throw new HttpError(`${shownUrl} answered ${asked} with Content-Range '${contentRange}'`, shownUrl, { retryable: false });
    }
    const validator = validatorOf(headers);
    if (sent) {
      const now = header(headers, sent.name);
      // A server may leave Last-Modified out of a 206; an ETag that is there must be the one opened.
      if (now !== undefined ? now !== sent.value : sent.name === "etag") {
        body.destroy();
        throw new ImageChangedError(`${shownUrl} changed on the server: ${sent.name === "etag" ? "ETag" : "Last-Modified"} ${now ?? "(none)"}, not ${sent.value}`, shownUrl);
      }
    } else if (validator) {
      // A mirror's first answer: same size (checked above), and from now on this very file.
      candidate.validator = validator;
    } else {
      body.destroy();
      throw new HttpError(`${shownUrl} sends neither a strong ETag nor a Last-Modified date: lazy could not tell whether the image changes between two reads`, shownUrl, { retryable: false });
    }
    return collectBody(body, length, this.#idleTimeoutMs, shownUrl);
  }

  /** One GET of the candidate, following redirects (never https to http); the first other answer. */
  #get(candidate: Candidate, extra: Record<string, string>, signal: AbortSignal | undefined): Promise<{ url: string; response: HttpResponse }> {
    const headers = { "user-agent": "netimport", "accept-encoding": "identity", ...extra };
    return requestFollowingRedirects(this.#client, candidate.href, { headers, ...(signal ? { signal } : {}) }, this.#maxRedirects);
  }

  async close(): Promise<void> {
    this.#closing.abort(new Error("range reader closed"));
    await this.#client.close();
  }
}

/**
 * The body of a 206 into one buffer of exactly `length` bytes. Fails (retryable) when the body ends
 * short or says nothing for `idleMs`; a body longer than asked is no answer to the request.
 */
function collectBody(body: ResponseBody, length: number, idleMs: number, url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const data = Buffer.allocUnsafe(length);
    let filled = 0;
    const settle = (error: Error | undefined): void => {
      clearTimeout(watchdog);
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("error", onError);
      if (!error) return resolve(data);
      body.destroy();
      reject(error);
    };
    const onData = (chunk: Buffer): void => {
      if (filled + chunk.length > length) {
        return settle(new HttpError(`${url} sent more than the ${length} bytes of its Content-Range`, url, { retryable: false }));
      }
      chunk.copy(data, filled);
      filled += chunk.length;
      watchdog.refresh();
    };
    const onEnd = (): void => {
      settle(filled === length ? undefined : new HttpError(`connection closed after ${filled} of ${length} bytes from ${url}`, url, { retryable: true }));
    };
    const onError = (error: Error): void => settle(error);
    const watchdog = setTimeout(() => settle(new HttpError(`no data for ${idleMs / 1000} s from ${url}`, url, { retryable: true })), idleMs);
    body.on("data", onData);
    body.on("end", onEnd);
    body.on("error", onError);
  });
}

/** The validator If-Range can use: a strong ETag, else Last-Modified (a weak ETag cannot be used). */
function validatorOf(headers: Headers): Validator | undefined {
  const etag = header(headers, "etag");
  if (etag && !etag.startsWith("W/")) return { name: "etag", value: etag };
  const lastModified = header(headers, "last-modified");
  return lastModified ? { name: "last-modified", value: lastModified } : undefined;
}


/** The error with every URL in its message shown without credentials (the client names URLs as given). */
function shown(error: HttpError): HttpError {
  const message = redactSecrets(error.message);
  if (message === error.message) return error;
  return new HttpError(message, redactUrl(error.url), { retryable: error.retryable, status: error.status, cause: error.cause });
}

/**
 * One error for a read or probe that every candidate failed: each one's failure, in order; retryable
 * when any of them is (that candidate may answer later).
 */
function combined(failures: HttpError[]): HttpError {
  if (failures.length === 1) return failures[0]!;
  const statuses = new Set(failures.map((failure) => failure.status));
  return new HttpError(failures.map((failure) => failure.message).join("; "), failures[0]!.url, {
    retryable: failures.some((failure) => failure.retryable),
    status: statuses.size === 1 ? failures[0]!.status : undefined,
    cause: new CandidatesError(failures),
  });
}

/** The resolver a client would use: the DNS fallback's servers when resolv.conf names none, else the system's. */
function defaultResolver(paths: DnsPaths): LookupFunction {
  return fallbackLookup(paths) ?? (systemLookup as unknown as LookupFunction);
}

interface PinnedLookup {
  /** For the sockets: a fresh answer from the resolver, else the pinned one when it fails. */
  lookup: LookupFunction;
  /** Resolves `host` now (an IP address needs nothing), so that it has a pin; failures are ignored. */
  pin(host: string): Promise<void>;
}

/**
 * `resolve` with memory: each host's last answer is pinned, used as is while younger than
 * `reresolveAfterMs` (a lazy image makes a connection per read, and a DNS query before each would
 * double the latency of a block read), and used whenever asking again fails (after switch-root
 * there is nothing left to ask).
 */
function pinLookups(resolve: LookupFunction, reresolveAfterMs: number): PinnedLookup {
  const pins = new Map<string, { addresses: LookupAddress[]; at: number }>();
  const lookup = ((hostname: string, options: LookupOptions, callback: (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    const family = options.family === 4 || options.family === "IPv4" ? 4 : options.family === 6 || options.family === "IPv6" ? 6 : 0;
    const key = `${family} ${hostname}`;
    const pinned = pins.get(key);
    const answer = (addresses: LookupAddress[]): void => {
      if (options.all) callback(null, addresses);
      else callback(null, addresses[0]!.address, addresses[0]!.family);
    };
    if (pinned && performance.now() - pinned.at < reresolveAfterMs) {
      process.nextTick(answer, pinned.addresses);
      return;
    }
    resolve(hostname, { ...options, all: true }, (error, addresses) => {
      if (!error && Array.isArray(addresses) && addresses.length > 0) {
        pins.set(key, { addresses, at: performance.now() });
        answer(addresses);
      } else if (pinned) {
        answer(pinned.addresses);
      } else {
        callback(error ?? Object.assign(new Error(`no address for ${hostname}`), { code: "ENOTFOUND" }), "");
      }
    });
  }) as LookupFunction;
  const pin = (host: string): Promise<void> => {
    const hostname = host.startsWith("[") ? host.slice(1, -1) : host;
    if (isIP(hostname)) return Promise.resolve();
    return new Promise((resolve) => lookup(hostname, { all: true }, () => resolve()));
  };
  return { lookup, pin };
}
