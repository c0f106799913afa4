// The bytes of a URL as served, as a Readable: redirects (bounded, loops detected, never from https
// to http), retries with capped exponential backoff and full jitter, resume of an interrupted transfer
// with `Range` + `If-Range` (no byte is ever emitted twice), an idle timeout instead of a total one,
// and mirrors tried in order. 404/410/403 move on to the next mirror at once; 5xx and network
// errors are retried on the same URL first.
//
// A resume continues the same file or nothing: it needs a validator from the first response (a strong
// ETag, else Last-Modified) for If-Range, and the 206 must carry the same validator and total size.
// When that cannot be had (no validator, a server that ignores Range, a file that changed), the body
// fails with RestartFromZero: the bytes already passed on cannot be taken back, so the caller starts
// the whole transfer again.
import { Readable } from "node:stream";
import type { HttpClient, HttpResponse, RequestInit } from "./http-client.ts";
import { InvalidResponseError } from "./http1-response.ts";
import { backoffDelay, sleep, type BackoffPolicy } from "./backoff.ts";
import { candidateUrls } from "./mirrors.ts";

export interface TransferOptions {
  /** The client every request goes through (http-client.ts). */
  client: HttpClient;
  /** Base URLs tried, in order, after the URL itself. */
  mirrors?: readonly string[];
  /** Fail a connection that delivers no byte for this long (default 30 s). */
  idleTimeoutMs?: number;
  /** Retries per URL on 5xx and network errors (default 5); progress resets the count. */
  retries?: number;
  /** Backoff of the retries (default base 1 s, cap 30 s). */
  backoff?: BackoffPolicy;
  /** Redirects followed per request (default 10). */
  maxRedirects?: number;
  signal?: AbortSignal;
  /** Told about each failed attempt that will be retried or moved past (for a log line). */
  onRetry?(event: RetryEvent): void;
}

/**
 * A failed attempt that is not the end: retried on the same URL after `delayMs`, retried from byte 0
 * (`restart`), or moved past to the next candidate URL (neither).
 */
export interface RetryEvent {
  url: string;
  error: Error;
  delayMs?: number;
  restart?: boolean;
}

/** An HTTP failure; `retryable` says whether trying the same URL again can help. */
export class HttpError extends Error {
  readonly retryable: boolean;
  readonly status: number | undefined;
  readonly url: string;
  constructor(message: string, url: string, options: { retryable: boolean; status?: number; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.name = "HttpError";
    this.url = url;
    this.retryable = options.retryable;
    this.status = options.status;
  }
}

/**
 * The transfer cannot continue where it stopped; only a new transfer from byte 0 can deliver the file.
 * `offset` is how far the body had got.
 */
export class RestartFromZero extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.name = "RestartFromZero";
    this.offset = offset;
  }
}

/** Every candidate URL failed; the message lists each one's last failure, in order. */
export class CandidatesError extends Error {
  readonly errors: Error[];
  constructor(errors: Error[]) {
    super(errors.map((e) => e.message).join("; "), { cause: errors.at(-1) });
    this.name = "CandidatesError";
    this.errors = errors;
  }
}

const REASONS: Record<number, string> = {
  400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
  410: "Gone", 416: "Range Not Satisfiable", 429: "Too Many Requests", 500: "Internal Server Error",
  502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
};

/** "HTTP 404 Not Found from http://…" */
export function statusError(status: number, url: string): HttpError {
  const reason = REASONS[status];
  const retryable = status >= 500 || status === 408 || status === 429;
  return new HttpError(`HTTP ${status}${reason ? ` ${reason}` : ""} from ${url}`, url, { retryable, status });
}

/**
 * What a request to `url` threw, as an HttpError: retryable unless no attempt can help (a certificate
 * that does not verify, a response that is no valid HTTP).
 *
 * @example networkError(Object.assign(new Error("connect ECONNREFUSED 10.0.0.1:80"), { code: "ECONNREFUSED" }), "http://10.0.0.1/os.raw").retryable // true
 */
export function networkError(error: unknown, url: string): HttpError {
  if (error instanceof HttpError) return error;
  const e = error as NodeJS.ErrnoException;
  const what = e.code && !e.message.includes(e.code) ? `${e.message} (${e.code})` : e.message;
  // A certificate that does not verify will not verify on the next attempt either, nor will a
  // response that is no valid HTTP (http1-response.ts); a cut connection or a timeout may.
  const persistent = /CERT|UNABLE_TO_|SELF_SIGNED|ERR_TLS/.test(e.code ?? "") || error instanceof InvalidResponseError;
  // The client's own errors name the URL already.
  const from = e.message.includes(url) ? "" : ` from ${url}`;
  return new HttpError(`${what}${from}`, url, { retryable: !persistent, cause: error });
}

/**
 * Where a redirect leads: only to http:// or https://, and never from https:// to http://, which would
 * hand the transfer to anyone on the path.
 *
 * @example redirectTarget("https://a/img/os.raw", "/b/os.raw") // "https://a/b/os.raw"
 */
export function redirectTarget(from: string, location: string): string {
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new HttpError(`${from} redirects to '${location}', which is not a URL`, from, { retryable: false });
  }
  if (next.protocol !== "http:" && next.protocol !== "https:") {
    throw new HttpError(`${from} redirects to ${next.href}, which is not an http:// or https:// URL: refusing to follow it`, from, { retryable: false });
  }
  if (from.startsWith("https:") && next.protocol === "http:") {
    throw new HttpError(`${from} redirects to ${next.href}: refusing to go from https to plain http`, from, { retryable: false });
  }
  return next.href;
}

/**
 * `Basic …` for a URL with a user name or password (RFC 7617), else undefined.
 *
 * @example basicAuthorization("http://u:p@m/os.raw") // "Basic dTpw"
 */
export function basicAuthorization(url: string): string | undefined {
  const { username, password } = new URL(url);
  if (!username && !password) return undefined;
  return `Basic ${Buffer.from(`${decodeURIComponent(username)}:${decodeURIComponent(password)}`).toString("base64")}`;
}

/** `If-None-Match` for the one URL the image at DEST was served from: another URL's ETag means nothing. */
export interface ConditionalRequest {
  url: string;
  etag: string;
}

/** A response header's value (the first, when it was sent more than once). */
export function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * One GET of `start` through `client`, following redirects (at most `maxRedirects`, loops detected,
 * never from https to http), with the URL's user name and password sent to its own origin only.
 * Returns the first answer that is no redirect, and the URL that gave it.
 *
 * @example const { url, response } = await requestFollowingRedirects(client, "http://u:p@o/os.raw", { headers: { range: "bytes=0-0" } });
 */
export async function requestFollowingRedirects(
  client: HttpClient, start: string, init: RequestInit, maxRedirects = 10,
): Promise<{ url: string; response: HttpResponse }> {
  const credentials = basicAuthorization(start);
  const seen = new Set<string>();
  let url = start;
  for (;;) {
    seen.add(url);
    const sameOrigin = credentials !== undefined && new URL(url).origin === new URL(start).origin;
    const response = await client.request(url, { ...init, headers: sameOrigin ? { ...init.headers, authorization: credentials } : init.headers });
    const { statusCode } = response;
    if (![301, 302, 303, 307, 308].includes(statusCode)) return { url, response };
    await response.body.dump();
    const location = header(response.headers, "location");
    if (!location) throw new HttpError(`HTTP ${statusCode} without Location from ${url}`, url, { retryable: false });
    const next = redirectTarget(url, location);
    if (seen.has(next)) throw new HttpError(`redirect loop: ${url} redirects back to ${next}`, start, { retryable: false });
    if (seen.size > maxRedirects) throw new HttpError(`too many redirects (more than ${maxRedirects}) from ${start}`, start, { retryable: false });
    url = next;
  }
}

interface Response extends HttpResponse {
  url: string;
}

/** What the server said about the file when the transfer started. */
export interface SourceInfo {
  /** Total size in bytes as served (Content-Length), when known. */
  size: number | undefined;
  /** The strong or weak ETag of the file, as sent. */
  etag: string | undefined;
  lastModified: string | undefined;
}

export type OpenedSource =
  | ({ notModified: false; body: Readable; readonly url: string } & SourceInfo)
  | { notModified: true; url: string };

/**
 * One transfer of one file over the candidate URLs. Tracks the offset reached, the validator for
 * `If-Range`, and the retry budget; `open(offset)` yields the next response body to read from.
 */
class Transfer {
  readonly candidates: string[];
  index = 0;
  attempt = 0;
  offset = 0;
  validator: string | undefined;
  info: SourceInfo = { size: undefined, etag: undefined, lastModified: undefined };
  readonly failures = new Map<string, Error>();
  readonly options: TransferOptions;
  readonly ifNoneMatch: ConditionalRequest | undefined;
  /** Set when the consumer destroyed the stream: no more retries. */
  closed = false;
  /** Aborts pending requests and backoff sleeps, on the caller's signal or when the consumer gives up. */
  readonly stop = new AbortController();
  readonly signal: AbortSignal;

  constructor(url: string, options: TransferOptions, ifNoneMatch?: ConditionalRequest) {
    this.options = options;
    this.candidates = candidateUrls(url, options.mirrors);
    this.ifNoneMatch = ifNoneMatch;
    this.signal = options.signal ? AbortSignal.any([options.signal, this.stop.signal]) : this.stop.signal;
  }

  get url(): string {
    return this.candidates[Math.min(this.index, this.candidates.length - 1)]!;
  }

  /** Records a failure, then waits before a retry on the same URL or moves on to the next one. */
  async recover(error: Error): Promise<void> {
    const signal = this.signal;
    if (signal.aborted) throw signal.reason;
    const url = this.url;
    this.failures.set(url, error);
    const retries = this.options.retries ?? 5;
    if (error instanceof HttpError && error.retryable && this.attempt < retries) {
      const delayMs = backoffDelay(this.attempt++, this.options.backoff ?? { baseMs: 1000, capMs: 30000 });
      this.options.onRetry?.({ url, error, delayMs });
      await sleep(delayMs, signal);
      return;
    }
    this.options.onRetry?.({ url, error });
    this.index++;
    this.attempt = 0;
  }

  /** The error to report once every candidate failed: each URL's last failure, in order. */
  finalError(): Error {
    const errors = [...this.failures.values()];
    if (errors.length === 1) return errors[0]!;
    return new CandidatesError(errors);
  }

  /** A response to read from `offset` on, from the first candidate that gives one. */
  async open(offset: number): Promise<Response | "not-modified"> {
    for (;;) {
      const url = this.candidates[this.index];
      if (url === undefined) throw this.finalError();
      try {
        return await this.request(url, offset);
      } catch (error) {
        if (error instanceof RestartFromZero) throw error;
        await this.recover(networkError(error, url));
      }
    }
  }

  /** One GET of `url` from `offset`, following redirects; throws HttpError unless usable. */
  async request(start: string, offset: number): Promise<Response | "not-modified"> {
    const headers: Record<string, string> = { "user-agent": "netimport", "accept-encoding": "identity" };
    if (offset > 0) {
      // Only the same file can be continued: without a validator, If-Range cannot ask for that.
      if (!this.validator) {
        throw new RestartFromZero(`${this.url} sent neither an ETag nor a Last-Modified date, so the transfer cannot resume at byte ${offset}`, offset);
      }
      headers.range = `bytes=${offset}-`;
      headers["if-range"] = this.validator;
    } else if (this.ifNoneMatch && this.ifNoneMatch.url === start) {
      headers["if-none-match"] = this.ifNoneMatch.etag;
    }
    const conditional = headers["if-none-match"] !== undefined;
    const { url, response } = await requestFollowingRedirects(this.options.client, start, { headers, signal: this.signal }, this.options.maxRedirects);
    const { statusCode } = response;
    if (statusCode === 304 && conditional) {
      await response.body.dump();
      return "not-modified";
    }
    if (statusCode === 200 && offset > 0) {
      response.body.destroy();
      throw new RestartFromZero(`${url} answered the resume at byte ${offset} with the whole file: the file changed on the server, or the server ignores Range`, offset);
    }
    if (statusCode === 206 && offset > 0) {
      const problem = this.resumeProblem(response.headers, offset);
      if (problem) {
        response.body.destroy();
        throw new RestartFromZero(`${url} answered the resume at byte ${offset} ${problem}`, offset);
      }
      return { url, ...response };
    }
    if (statusCode === 200 && offset === 0) return { url, ...response };
    if (statusCode === 416 && offset > 0) {
      await response.body.dump().catch(() => undefined);
      const actual = /^bytes \*\/(\d+)$/.exec(header(response.headers, "content-range") ?? "")?.[1];
      const has = actual === undefined ? "" : `, the file has ${actual}`;
      throw new RestartFromZero(
        `HTTP 416 Range Not Satisfiable from ${url} when resuming at byte ${offset} of ${this.info.size ?? "?"} announced${has}: wrong Content-Length, or the file changed`,
        offset,
      );
    }
    await response.body.dump().catch(() => undefined);
    throw statusError(statusCode, url);
  }

  /**
   * Why a 206 does not continue the file the first response started (undefined when it does): the
   * range must start where we stopped, and size and validators must be those of the first response.
   */
  resumeProblem(headers: Response["headers"], offset: number): string | undefined {
    const contentRange = header(headers, "content-range") ?? "";
    const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(contentRange);
    const total = range?.[2] === "*" ? undefined : Number(range?.[2]);
    if (!range || Number(range[1]) !== offset) return `with Content-Range '${contentRange}'`;
    if (total !== undefined && this.info.size !== undefined && total !== this.info.size) {
      return `with a file of ${total} bytes, not the ${this.info.size} announced first`;
    }
    const etag = header(headers, "etag");
    if (this.info.etag !== undefined && etag !== this.info.etag) return `with ETag ${etag ?? "(none)"}, not ${this.info.etag}: the file changed`;
    const lastModified = header(headers, "last-modified");
    if (this.info.etag === undefined && this.info.lastModified !== undefined && lastModified !== undefined && lastModified !== this.info.lastModified) {
      return `with Last-Modified ${lastModified}, not ${this.info.lastModified}: the file changed`;
    }
    return undefined;
  }

  /** Takes size and validators from the first full response. */
  learn(response: Response): void {
    const length = header(response.headers, "content-length");
    const etag = header(response.headers, "etag");
    const lastModified = header(response.headers, "last-modified");
    this.info = { size: length !== undefined ? Number(length) : undefined, etag, lastModified };
    // If-Range needs a strong validator: a weak ETag cannot be used, a date can.
    this.validator = etag && !etag.startsWith("W/") ? etag : lastModified;
  }

  /** The body bytes from `body` on, resuming after each failure until the file is complete. */
}

/**
 * The body of a transfer as one Readable: the current response's chunks are pushed on as they come
 * ('data' events, paused while the consumer is full), and when a response fails or ends short, the
 * transfer recovers (retry, resume with Range, next mirror) and the next response takes over. No
 * byte is emitted twice. A response that delivers nothing for the idle timeout fails, but time spent
 * waiting for the consumer does not count. One watchdog timer per body rather than one per chunk: at
 * 16,000 chunks a GiB, arming a timer for each cost more than the HTTP parsing; and no async
 * iterator between the response and the consumer, whose promises per chunk cost as much again.
 */
class TransferBody extends Readable {
  readonly #transfer: Transfer;
  readonly #idleMs: number;
  #body: Readable | undefined;
  #offsetAtLastFailure = 0;
  /** Since when the consumer has been waiting for a chunk (undefined while it is full). */
  #waitingSince: number | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #recovering = false;

  constructor(transfer: Transfer, first: Response) {
    super({ highWaterMark: 1 << 20 });
    this.#transfer = transfer;
    this.#idleMs = transfer.options.idleTimeoutMs ?? 30000;
    this.#attach(first.body);
  }

  #attach(body: Readable): void {
    this.#body = body;
    this.#waitingSince = performance.now();
    this.#arm(this.#idleMs);
    body.on("data", this.#onData);
    body.on("end", this.#onEnd);
    body.on("error", this.#onError);
  }

  /** Lets go of the current response (destroyed: its connection closes). */
  #detach(): void {
    const body = this.#body;
    clearTimeout(this.#watchdog);
    if (!body) return;
    this.#body = undefined;
    body.off("data", this.#onData);
    body.off("end", this.#onEnd);
    body.off("error", this.#onError);
    body.on("error", () => {}); // what it says from now on is of no interest
    body.destroy();
  }

  #arm(ms: number): void {
    clearTimeout(this.#watchdog);
    this.#watchdog = setTimeout(this.#check, ms);
  }

  readonly #check = (): void => {
    const waited = this.#waitingSince === undefined ? 0 : performance.now() - this.#waitingSince;
    if (waited < this.#idleMs) return this.#arm(this.#idleMs - waited);
    const url = this.#transfer.url;
    this.#fail(new HttpError(`no data for ${this.#idleMs / 1000} s from ${url}`, url, { retryable: true }));
  };

  readonly #onData = (chunk: Buffer): void => {
    this.#transfer.offset += chunk.length;
    if (this.push(chunk)) {
      this.#waitingSince = performance.now();
    } else {
      this.#waitingSince = undefined;
      this.#body?.pause();
    }
  };

  readonly #onEnd = (): void => {
    const { offset, info } = this.#transfer;
    if (info.size !== undefined && offset < info.size) {
      const url = this.#transfer.url;
      return this.#fail(new HttpError(`connection closed after ${offset} of ${info.size} bytes from ${url}`, url, { retryable: true }));
    }
    this.#detach();
    this.push(null);
  };

  readonly #onError = (error: Error): void => this.#fail(error);

  /** The current response failed: go on with the next one the transfer opens, or end with the error. */
  #fail(error: unknown): void {
    this.#detach();
    const transfer = this.#transfer;
    if (transfer.closed || this.#recovering) return;
    this.#recovering = true;
    (async () => {
      if (transfer.offset > this.#offsetAtLastFailure) transfer.attempt = 0; // progress earns a fresh budget
      this.#offsetAtLastFailure = transfer.offset;
      await transfer.recover(networkError(error, transfer.url));
      if (transfer.info.size !== undefined && transfer.offset >= transfer.info.size) return undefined;
      const next = await transfer.open(transfer.offset);
      if (next === "not-modified") throw new HttpError(`unexpected 304 from ${transfer.url}`, transfer.url, { retryable: false });
      return next;
    })().then((next) => {
      this.#recovering = false;
      if (transfer.closed) next?.body.destroy();
      else if (next) this.#attach(next.body);
      else this.push(null);
    }, (failure: unknown) => {
      this.#recovering = false;
      this.destroy(failure as Error);
    });
  }

  override _read(): void {
    this.#waitingSince ??= performance.now();
    this.#body?.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A consumer that stops early must not leave a connection open, nor wait for a stalled read to
    // time out: destroying the current response ends the pending read at once.
    this.#transfer.closed = true;
    this.#transfer.stop.abort(new Error("stream destroyed"));
    this.#detach();
    callback(error);
  }
}

/**
 * Opens `url` (or a mirror): resolves once a server answered with the file (or 304 for
 * `ifNoneMatch`), with its size and validators; `body` then streams every byte exactly once,
 * resuming across failures.
 *
 * @example
 * const source = await openHttpSource("https://example.org/os.raw.zst", { client, mirrors: ["https://m/"] });
 * if (!source.notModified) await pipeline(source.body, createWriteStream("os.raw.zst"));
 */
export async function openHttpSource(url: string, options: TransferOptions & { ifNoneMatch?: ConditionalRequest }): Promise<OpenedSource> {
  const transfer = new Transfer(url, options, options.ifNoneMatch);
  const first = await transfer.open(0);
  if (first === "not-modified") return { notModified: true, url: transfer.url };
  transfer.learn(first);
  const body = new TransferBody(transfer, first);
  return {
    notModified: false,
    body,
    get url() {
      return transfer.url;
    },
    ...transfer.info,
  };
}

/**
 * A small file (checksum list, signature) from `url` or its mirrors, or undefined when every
 * candidate says it does not exist (404/410/403). Other failures throw.
 */
export async function fetchSmallFile(url: string, options: TransferOptions, limit = 16 << 20): Promise<{ data: Buffer; url: string } | undefined> {
  for (let restarts = 0; ; restarts++) {
    try {
      return await fetchSmallFileOnce(url, options, limit);
    } catch (error) {
      if (!(error instanceof RestartFromZero) || restarts >= (options.retries ?? 5)) throw error;
      options.onRetry?.({ url, error, restart: true });
    }
  }
}

async function fetchSmallFileOnce(url: string, options: TransferOptions, limit: number): Promise<{ data: Buffer; url: string } | undefined> {
  let source: OpenedSource;
  try {
    source = await openHttpSource(url, options);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
  if (source.notModified) throw new Error(`unexpected 304 from ${source.url}`);
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of source.body as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > limit) {
      source.body.destroy();
      throw new Error(`${source.url} is larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return { data: Buffer.concat(chunks), url: source.url };
}

/** True when an error (or every per-URL error of a mirror list) says "no such file". */
export function isNotFound(error: unknown): boolean {
  if (error instanceof CandidatesError) return error.errors.every(isNotFound);
  return error instanceof HttpError && (error.status === 404 || error.status === 410 || error.status === 403);
}
