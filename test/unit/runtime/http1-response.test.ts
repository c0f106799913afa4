// The HTTP/1.1 response parser on its own: every way a response can be split into reads, the framings
// of RFC 9112, and what a hostile or broken server may send. (http-client.test.ts runs it on sockets.)
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Http1ResponseParser, InvalidResponseError, MAX_HEAD_BYTES, type ResponseHead } from "../../../runtime/http1-response.ts";

const URL = "http://127.0.0.1:1/os.raw";

interface Parsed {
  heads: ResponseHead[];
  chunks: Buffer[];
  ended: boolean;
  parser: Http1ResponseParser;
}

/** Feeds `pieces` as successive reads; with `eof`, then the end of the connection. */
function parse(pieces: Buffer[], eof = false): Parsed {
  const result: Parsed = {
    heads: [], chunks: [], ended: false,
    parser: new Http1ResponseParser(URL, {
      onHead: (head) => result.heads.push(head),
      onBody: (chunk) => result.chunks.push(chunk),
      onEnd: () => void (result.ended = true),
    }),
  };
  for (const piece of pieces) result.parser.execute(piece);
  if (eof) result.parser.finish();
  return result;
}

/** `data` cut at `at` (each index a split point), as reads. */
function splitAt(data: Buffer, ...at: number[]): Buffer[] {
  const points = [0, ...at, data.length];
  return points.slice(1).map((end, i) => data.subarray(points[i], end));
}

const text = (s: string) => Buffer.from(s, "latin1");
const body = (p: Parsed) => Buffer.concat(p.chunks).toString("latin1");

const CHUNKED = text(
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
  + "5\r\nhello\r\n"
  + "1;name=value;quoted=\"a;b\"\r\n,\r\n"
  + "00006 \t;ext\r\n world\r\n"
  + "0\r\nX-Trailer: yes\r\nChecksum: abc\r\n\r\n",
);

describe("Http1ResponseParser: framing", () => {
  it("a chunked body, split anywhere into two or three reads, with extensions and trailers ignored", () => {
    for (let a = 1; a < CHUNKED.length; a++) {
      for (const b of [undefined, a + 1, a + 7]) {
        if (b !== undefined && b >= CHUNKED.length) continue;
        const p = parse(b === undefined ? splitAt(CHUNKED, a) : splitAt(CHUNKED, a, b));
        assert.equal(body(p), "hello, world", `split at ${a}, ${b}`);
        assert.ok(p.ended && p.parser.done, `split at ${a}, ${b}`);
        assert.equal(p.heads[0]?.headers["x-a"], "1");
      }
    }
    const bytewise = parse([...CHUNKED].map((byte) => Buffer.from([byte])));
    assert.equal(body(bytewise), "hello, world");
    assert.ok(bytewise.ended);
  });

  it("hands on body bytes as subarrays of the reads, without the framing", () => {
    const read = Buffer.from(CHUNKED);
    const p = parse([read]);
    assert.deepEqual(p.chunks.map((c) => c.toString()), ["hello", ",", " world"]);
    for (const chunk of p.chunks) assert.equal(chunk.buffer, read.buffer);
  });

  it("a Content-Length body, split anywhere; bytes after it are ignored", () => {
    const data = text("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789EXTRA");
    for (let a = 1; a < data.length; a++) {
      const p = parse(splitAt(data, a));
      assert.equal(body(p), "0123456789");
      assert.ok(p.ended);
    }
  });

  it("a body without length ends at EOF", () => {
    const p = parse([text("HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil"), text(" close")]);
    assert.equal(p.ended, false);
    p.parser.finish();
    assert.equal(body(p), "until close");
    assert.ok(p.ended);
    assert.equal(p.heads[0]?.httpVersion, "1.0");
  });

  it("204, 304 and Content-Length: 0 have no body, whatever else they announce", () => {
    for (const head of ["HTTP/1.1 204 No Content\r\n\r\n", "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
      "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]) {
      const p = parse([text(head)]);
      assert.ok(p.ended, head);
      assert.equal(p.chunks.length, 0);
    }
  });

  it("skips 100 Continue and 103 Early Hints, in the same read or across reads", () => {
    const data = text("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    for (let a = 1; a < data.length; a++) {
      const p = parse(splitAt(data, a));
      assert.deepEqual(p.heads.map((h) => h.statusCode), [200], `split at ${a}`);
      assert.equal(p.heads[0]?.headers.link, undefined);
      assert.equal(body(p), "ok");
    }
  });

  it("keeps the status, the reason phrase, lower-case names, trimmed values, repeated headers as arrays", () => {
    const p = parse([text("HTTP/1.1 404 Not  Found\r\nSet-Cookie: a=1\r\nX-Empty:\r\nset-cookie:  b=2 \t\r\nETag: \"x\"\r\n__proto__: y\r\nContent-Length: 0\r\n\r\n")]);
    const head = p.heads[0]!;
    assert.equal(head.statusCode, 404);
    assert.equal(head.statusMessage, "Not  Found");
    assert.deepEqual(head.headers["set-cookie"], ["a=1", "b=2"]);
    assert.equal(head.headers["x-empty"], "");
    assert.equal(head.headers.etag, "\"x\"");
    assert.equal(Object.getPrototypeOf(head.headers), Object.prototype);
    assert.equal(head.headers["__proto__"], "y");
    assert.equal(parse([text("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")]).heads[0]?.statusMessage, "");
  });

  it("takes identical repeated Content-Lengths", () => {
    const p = parse([text("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 003, 3\r\n\r\nabc")]);
    assert.equal(body(p), "abc");
  });
});

describe("Http1ResponseParser: a connection closed too early", () => {
  it("names the bytes received and expected, and the URL", () => {
    const p = parse([text("HTTP/1.1 200 OK\r\nContent-Length: 456\r\n\r\n"), Buffer.alloc(123)]);
    assert.throws(() => p.parser.finish(), { message: `connection closed after 123 of 456 bytes from ${URL}` });
  });

  it("before the last chunk, in the headers, or before anything", () => {
    const chunked = parse([text("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")]);
    assert.throws(() => chunked.parser.finish(), { message: `connection closed after 5 bytes of a chunked body, before its last chunk, from ${URL}` });
    const trailers = parse([text("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n")]);
    assert.throws(() => trailers.parser.finish(), /before its last chunk/);
    assert.throws(() => parse([text("HTTP/1.1 200 OK\r\nContent-")]).parser.finish(), { message: `connection closed in the response headers from ${URL}` });
    assert.throws(() => parse([]).parser.finish(), { message: `connection closed without a response from ${URL}` });
  });
});

describe("Http1ResponseParser: what no server may send", () => {
  const rejects = (response: string | Buffer, message: RegExp) => {
    const data = typeof response === "string" ? text(response) : response;
    assert.throws(() => parse([data]), (error: Error) => error instanceof InvalidResponseError && message.test(error.message) && error.message.endsWith(URL),
      `${JSON.stringify(data.toString("latin1").slice(0, 80))} should fail with ${message}`);
    // The same split into single bytes fails the same way.
    assert.throws(() => parse([...data].map((b) => Buffer.from([b]))), InvalidResponseError);
  };

  it("a status line that is not HTTP/1.x DDD", () => {
    for (const line of ["HTTP/2 200 OK", "HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "ICY 200 OK", "HTTP/1.1 600 Odd", "http/1.1 200 OK",
      "HTTP/1.1  200 OK", "HTTP/1.1 200 O\x01K", "", "SSH-2.0-OpenSSH_9.2"]) {
      rejects(`${line}\r\nContent-Length: 0\r\n\r\n`, /^invalid status line /);
    }
  });

  it("response headers over 64 KiB, 1xx heads included, in one read or many", () => {
    const filler = `X-Filler: ${"a".repeat(1000)}\r\n`.repeat(66);
    rejects(`HTTP/1.1 200 OK\r\n${filler}\r\n`, /^response headers larger than 64 KiB/);
    rejects(`HTTP/1.1 200 OK\r\n${filler}`, /^response headers larger than 64 KiB/); // no end in sight
    const interim = `HTTP/1.1 103 Early Hints\r\n${`Link: ${"b".repeat(1000)}\r\n`.repeat(40)}\r\n`;
    rejects(`${interim}${interim}HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n`, /^response headers larger than 64 KiB/);
    // Just under the limit is fine.
    const head = `HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: `;
    const fits = `${head}${"c".repeat(MAX_HEAD_BYTES - head.length - 4)}\r\n\r\n`;
    assert.equal(Buffer.byteLength(fits), MAX_HEAD_BYTES);
    assert.ok(parse([text(fits)]).ended);
    assert.ok(parse(splitAt(text(fits), 100, 40_000)).ended);
  });

  it("header lines that are no `token: value`, folded lines, control characters, bare CR or LF", () => {
    for (const line of ["Bad Name: x", "Bad(Name): x", ": no name", "No-Colon", "Name : space before colon", "X: a\x00b", "X: a\rb", "X: a\x1bb"]) {
      rejects(`HTTP/1.1 200 OK\r\n${line}\r\nContent-Length: 0\r\n\r\n`, /^invalid (header line|character in header) /);
    }
    rejects("HTTP/1.1 200 OK\r\nX-Long: a\r\n b\r\nContent-Length: 0\r\n\r\n", /^folded header line .* \(obsolete line folding\)/);
    rejects("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", /^invalid status line /);
    rejects("HTTP/1.1 200 OK\r\nX: 1\nContent-Length: 0\r\n\r\n", /^invalid character in header "X"/);
  });

  it("a Content-Length that is no number, conflicting ones, one too large", () => {
    for (const value of ["-1", "1e3", "0x10", "+5", "", "5 5", "abc"]) {
      rejects(`HTTP/1.1 200 OK\r\nContent-Length: ${value}\r\n\r\n`, /^invalid Content-Length /);
    }
    rejects("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", /^conflicting Content-Length values "5, 6"/);
    rejects("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", /^conflicting Content-Length values/);
    rejects("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", /^Content-Length "99999999999999999999" too large/);
  });

  it("Content-Length with Transfer-Encoding, and codings other than chunked", () => {
    rejects("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", /^response with both Transfer-Encoding and Content-Length/);
    for (const coding of ["gzip", "gzip, chunked", "chunked, chunked", "identity", "chunked;q=1"]) {
      rejects(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${coding}\r\n\r\n`, /^unsupported Transfer-Encoding /);
    }
  });

  it("bad chunk sizes, oversized chunk lines, missing CRLFs after a chunk", () => {
    const chunked = (rest: string) => `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${rest}`;
    for (const size of ["", "g", "-1", "0x5", " 5", "5 x", "+5"]) rejects(chunked(`${size}\r\nhello\r\n0\r\n\r\n`), /^invalid chunk size /);
    rejects(chunked("10000000000000\r\n"), /^chunk size "10000000000000" too large/);
    rejects(chunked(`5;${"x".repeat(5000)}\r\n`), /^chunk-size line longer than 4096 bytes/);
    rejects(chunked("5\r\nhelloX\r\n0\r\n\r\n"), /^chunk of the body not followed by CRLF \(after 5 bytes\)/);
    rejects(chunked("5\r\nhello\rX0\r\n\r\n"), /^chunk of the body not followed by CRLF/);
    rejects(chunked("5\nhello\r\n"), /^chunk-size line not ended by CRLF/);
    rejects(chunked(`0\r\n${"X: y\r\n".repeat(12_000)}\r\n`), /^trailer section longer than/);
  });

  it("101 Switching Protocols, which we never asked for", () => {
    rejects("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", /^unexpected 101 Switching Protocols/);
  });
});
