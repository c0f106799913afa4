// A strict, incremental HTTP/1.1 response parser (RFC 9112) for the client in http-client.ts: it is fed
// the bytes of one connection as they are read and hands on the body as subarrays of those very bytes
// (no copy), without the chunked framing. A server is not trusted: the head is bounded (64 KiB, 1xx
// heads included), header names must be tokens, obs-fold and bare CR/LF are refused, the framing must
// be unambiguous (Content-Length with Transfer-Encoding, or two different Content-Lengths, is an
// error) and chunk sizes are strict hex of bounded size followed by CRLFs that are checked.
//
//   const parser = new Http1ResponseParser(url, { onHead, onBody, onEnd });
//   socket reads → parser.execute(bytes)   (throws InvalidResponseError)
//   socket EOF   → parser.finish()         (throws when the body is not complete: a cut connection)

/** The most bytes the response heads may take, interim (1xx) heads included. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** The most bytes of a chunk-size line (size and ignored extensions). */
const MAX_CHUNK_LINE = 4096;
/** Chunk sizes of up to 13 significant hex digits (< 2^52): larger ones are no file we could take. */
const MAX_CHUNK_DIGITS = 13;

const CR = 13;
const LF = 10;
const HEAD_END = Buffer.from("\r\n\r\n", "latin1");

/** `token` of RFC 9110: what a header name may be. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Control characters other than HTAB: never in a header value or reason phrase. */
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-5]\d\d)(?: (.*))?$/s;

export type Headers = Record<string, string | string[] | undefined>;

export interface ResponseHead {
  statusCode: number;
  statusMessage: string;
  /** "1.0" or "1.1". */
  httpVersion: string;
  /** Lower-case names; a header sent more than once is an array of its values, in order. */
  headers: Headers;
}

export interface ResponseHandler {
  /** The final (non-1xx) head; body chunks follow. */
  onHead(head: ResponseHead): void;
  /** Body bytes: a subarray of the bytes given to execute(), never copied. */
  onBody(chunk: Buffer): void;
  /** The body is complete. */
  onEnd(): void;
}

/** What the server sent is no valid HTTP/1.1 response; trying again is unlikely to help. */
export class InvalidResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidResponseError";
  }
}

// Parser states (plain numbers: enums are not erasable syntax).
const State = { Head: 0, Length: 1, UntilClose: 2, ChunkSize: 3, ChunkData: 4, ChunkCrlf: 5, Trailers: 6, Done: 7 } as const;
type State = (typeof State)[keyof typeof State];

/** `text` for a message: quoted, escaped, at most 60 characters. */
function quote(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}

export class Http1ResponseParser {
  readonly #url: string;
  readonly #handler: ResponseHandler;
  #state: State = State.Head;
  /** Head bytes of earlier (1xx) heads, counted against MAX_HEAD_BYTES. */
  #headBytes = 0;
  /** Bytes seen at all (for "closed without a response"). */
  #seen = 0;
  /** A head that spans reads, copied here (a head in one read is parsed in place). */
  #partial: Buffer | undefined;
  #partialLength = 0;
  /** Content-Length, or undefined for chunked and until-close bodies. */
  #length: number | undefined;
  /** Bytes left of the body (Length) or of the current chunk (ChunkData); CRLF bytes seen (ChunkCrlf). */
  #remaining = 0;
  /** The chunk-size or trailer line read so far (latin1). */
  #line = "";
  #trailerBytes = 0;
  /** Body bytes handed on. */
  received = 0;

  constructor(url: string, handler: ResponseHandler) {
    this.#url = url;
    this.#handler = handler;
  }

  /** True once the body is complete; later bytes are ignored. */
  get done(): boolean {
    return this.#state === State.Done;
  }

  /** Parses the next bytes of the connection; throws InvalidResponseError on what no server may send. */
  execute(data: Buffer): void {
    this.#seen += data.length;
    let at = 0;
    while (at < data.length) {
      switch (this.#state) {
        case State.Head:
          at = this.#readHead(data, at);
          break;
        case State.Length: {
          const n = Math.min(this.#remaining, data.length - at);
          this.#remaining -= n;
          this.#emit(data.subarray(at, at + n));
          at += n;
          if (this.#remaining === 0) this.#end();
          break;
        }
        case State.UntilClose:
          this.#emit(at === 0 ? data : data.subarray(at));
          at = data.length;
          break;
        case State.ChunkData: {
          const n = Math.min(this.#remaining, data.length - at);
          this.#remaining -= n;
          this.#emit(data.subarray(at, at + n));
          at += n;
          if (this.#remaining === 0) this.#state = State.ChunkCrlf;
          break;
        }
        case State.ChunkCrlf:
          if (data[at] !== (this.#remaining === 0 ? CR : LF)) {
            throw new InvalidResponseError(`chunk of the body not followed by CRLF (after ${this.received} bytes) from ${this.#url}`);
          }
          at++;
          if (++this.#remaining === 2) {
            this.#remaining = 0;
            this.#state = State.ChunkSize;
          }
          break;
        case State.ChunkSize: {
          const [line, next] = this.#readLine(data, at, MAX_CHUNK_LINE, "chunk-size line");
          at = next;
          if (line !== undefined) this.#chunkSize(line);
          break;
        }
        case State.Trailers: {
          const [line, next] = this.#readLine(data, at, MAX_HEAD_BYTES - this.#trailerBytes, "trailer section");
          at = next;
          if (line === undefined) break;
          this.#trailerBytes += line.length + 2;
          if (line === "") this.#end(); // trailers are read and ignored
          else if (line.startsWith(" ") || line.startsWith("\t")) throw new InvalidResponseError(`folded trailer line from ${this.#url}`);
          break;
        }
        case State.Done:
          return; // bytes after the message: the connection closes anyway
      }
    }
  }

  /** The connection reached EOF: ends an until-close body, else throws for what was cut short. */
  finish(): void {
    switch (this.#state) {
      case State.Done:
        return;
      case State.UntilClose:
        this.#end();
        return;
      case State.Head:
        throw new Error(this.#seen === 0
          ? `connection closed without a response from ${this.#url}`
          : `connection closed in the response headers from ${this.#url}`);
      case State.Length:
        throw new Error(`connection closed after ${this.received} of ${this.#length} bytes from ${this.#url}`);
      default:
        throw new Error(`connection closed after ${this.received} bytes of a chunked body, before its last chunk, from ${this.#url}`);
    }
  }

  #emit(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.received += chunk.length;
    this.#handler.onBody(chunk);
  }

  #end(): void {
    this.#state = State.Done;
    this.#handler.onEnd();
  }

  /** Reads head bytes from `at`; returns where the body starts, or data.length when the head goes on. */
  #readHead(data: Buffer, at: number): number {
    const budget = MAX_HEAD_BYTES - this.#headBytes;
    const tooLarge = () => new InvalidResponseError(`response headers larger than ${MAX_HEAD_BYTES / 1024} KiB from ${this.#url}`);
    if (this.#partialLength === 0) {
      // The usual case: the whole head in one read, parsed where it lies.
      const end = data.indexOf(HEAD_END, at);
      if (end >= 0) {
        if (end + 4 - at > budget) throw tooLarge();
        this.#head(data.toString("latin1", at, end), end + 4 - at);
        return end + 4;
      }
      if (data.length - at >= budget) throw tooLarge();
    }
    const partial = (this.#partial ??= Buffer.allocUnsafe(MAX_HEAD_BYTES));
    const copied = data.copy(partial, this.#partialLength, at, at + Math.min(data.length - at, budget - this.#partialLength));
    const searched = this.#partialLength + copied;
    const end = partial.subarray(0, searched).indexOf(HEAD_END, Math.max(0, this.#partialLength - 3));
    if (end < 0) {
      if (searched >= budget) throw tooLarge();
      this.#partialLength = searched;
      return at + copied;
    }
    const used = end + 4 - this.#partialLength; // bytes of `data` that belong to the head
    this.#partialLength = 0;
    this.#head(partial.toString("latin1", 0, end), end + 4);
    return at + used;
  }

  /** One complete head (without its final CRLFCRLF): an interim 1xx one is skipped. */
  #head(text: string, bytes: number): void {
    this.#headBytes += bytes;
    const lines = text.split("\r\n");
    const statusLine = lines[0]!;
    const status = STATUS_LINE.exec(statusLine);
    if (!status || /[\r\n]/.test(statusLine) || CONTROL.test(status[3] ?? "")) {
      throw new InvalidResponseError(`invalid status line ${quote(statusLine)} from ${this.#url}`);
    }
    const statusCode = Number(status[2]);
    const headers: Headers = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.startsWith(" ") || line.startsWith("\t")) {
        throw new InvalidResponseError(`folded header line ${quote(line)} (obsolete line folding) from ${this.#url}`);
      }
      const colon = line.indexOf(":");
      const name = colon > 0 ? line.slice(0, colon) : "";
      if (!TOKEN.test(name)) throw new InvalidResponseError(`invalid header line ${quote(line)} from ${this.#url}`);
      const value = line.slice(colon + 1).replace(/^[\t ]+|[\t ]+$/g, "");
      if (CONTROL.test(value)) throw new InvalidResponseError(`invalid character in header ${quote(name)} from ${this.#url}`);
      addHeader(headers, name.toLowerCase(), value);
    }
    if (statusCode < 200) {
      if (statusCode === 101) throw new InvalidResponseError(`unexpected 101 Switching Protocols from ${this.#url}`);
      return; // 100 Continue, 103 Early Hints…: the final head follows
    }
    // The framing is settled before the head is handed on: a response whose framing is an error
    // never reaches the caller.
    this.#frame(statusCode, headers);
    this.#handler.onHead({ statusCode, statusMessage: status[3] ?? "", httpVersion: `1.${status[1]}`, headers });
    if (this.#state === State.Length && this.#remaining === 0) this.#end();
  }

  /** Settles how the body is delimited (RFC 9112 section 6.3); no body is a Content-Length of 0. */
  #frame(statusCode: number, headers: Headers): void {
    if (statusCode === 204 || statusCode === 304) {
      this.#length = 0;
      this.#remaining = 0;
      this.#state = State.Length;
      return;
    }
    const transferEncoding = headers["transfer-encoding"];
    const contentLength = headers["content-length"];
    if (transferEncoding !== undefined) {
      if (contentLength !== undefined) {
        throw new InvalidResponseError(`response with both Transfer-Encoding and Content-Length from ${this.#url}`);
      }
      const codings = [transferEncoding].flat().join(",").split(",").map((c) => c.trim().toLowerCase());
      if (codings.length !== 1 || codings[0] !== "chunked") {
        throw new InvalidResponseError(`unsupported Transfer-Encoding ${quote([transferEncoding].flat().join(", "))} from ${this.#url}`);
      }
      this.#state = State.ChunkSize;
      return;
    }
    if (contentLength !== undefined) {
      const raw = [contentLength].flat().join(", ");
      const values = raw.split(",").map((v) => v.trim());
      if (!values.every((v) => /^\d+$/.test(v))) throw new InvalidResponseError(`invalid Content-Length ${quote(raw)} from ${this.#url}`);
      const lengths = new Set(values.map((v) => v.replace(/^0+(?=\d)/, "")));
      if (lengths.size > 1) throw new InvalidResponseError(`conflicting Content-Length values ${quote(raw)} from ${this.#url}`);
      const length = Number(values[0]);
      if (!Number.isSafeInteger(length)) throw new InvalidResponseError(`Content-Length ${quote(values[0]!)} too large from ${this.#url}`);
      this.#length = length;
      this.#remaining = length;
      this.#state = State.Length;
      return;
    }
    this.#state = State.UntilClose;
  }

  /** A chunk-size line: `1*HEXDIG [BWS ";" extensions]`; extensions are ignored. */
  #chunkSize(line: string): void {
    const match = /^([0-9A-Fa-f]+)(?:[\t ]*;.*)?$/s.exec(line);
    const digits = match?.[1]!.replace(/^0+(?=.)/, "");
    if (!match || digits === undefined) {
      throw new InvalidResponseError(`invalid chunk size ${quote(line)} (after ${this.received} bytes) from ${this.#url}`);
    }
    if (digits.length > MAX_CHUNK_DIGITS) {
      throw new InvalidResponseError(`chunk size ${quote(match[1]!)} too large (after ${this.received} bytes) from ${this.#url}`);
    }
    const size = Number.parseInt(digits, 16);
    if (size === 0) {
      this.#state = State.Trailers;
      return;
    }
    this.#remaining = size;
    this.#state = State.ChunkData;
  }

  /**
   * A CRLF-terminated line from `at`, gathered across reads: [the line without CRLF, where it ended],
   * or [undefined, data.length] when it goes on in the next read. A bare CR or LF is an error.
   */
  #readLine(data: Buffer, at: number, limit: number, what: string): [string | undefined, number] {
    const lf = data.indexOf(LF, at);
    const end = lf < 0 ? data.length : lf;
    if (this.#line.length + (end - at) + 1 > limit) throw new InvalidResponseError(`${what} longer than ${limit} bytes from ${this.#url}`);
    this.#line += data.toString("latin1", at, end);
    if (lf < 0) return [undefined, data.length];
    const line = this.#line;
    this.#line = "";
    if (!line.endsWith("\r") || line.indexOf("\r") !== line.length - 1) {
      throw new InvalidResponseError(`${what} not ended by CRLF (after ${this.received} bytes) from ${this.#url}`);
    }
    return [line.slice(0, -1), lf + 1];
  }
}

function addHeader(headers: Headers, name: string, value: string): void {
  const previous = Object.hasOwn(headers, name) ? headers[name] : undefined;
  const next = previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [previous, value];
  // defineProperty: a header named __proto__ is a header like any other, not the object's prototype.
  Object.defineProperty(headers, name, { value: next, enumerable: true, writable: true, configurable: true });
}
