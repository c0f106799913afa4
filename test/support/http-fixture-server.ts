// A real HTTP(S) server on 127.0.0.1 that serves a folder the way a web server does (Range, If-Range,
// ETag, Last-Modified, If-None-Match) and can misbehave on demand, per path, so tests, the e2e boots
// and the benchmarks exercise the runtime against real sockets.
//
// Usage:
//   const server = await startFixtureServer({ root: dir });
//   server.behave("/image.raw.gz", { cutAt: [1000, 50_000] });  // drop the connection twice
//   server.behave("/missing", { status: 404 });
//   await pull(`${server.url}/image.raw.gz`, dest);
//   server.log.filter((e) => e.range)                            // the resume requests
//   await server.close();
import { createReadStream, statSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { join, normalize } from "node:path";

/** How the server treats one path (or every path, under the key "*"). All offsets are file offsets. */
export interface FixtureBehaviour {
  /** Answer with this status and a short body (404, 410, 403, 500, 503…) instead of the file. */
  status?: number;
  /** With `status`: only the first N requests get it, later ones are served normally. */
  statusTimes?: number;
  /** With `status`: the first N requests are served normally, later ones get the status. */
  statusAfter?: number;
  /** Answer 302 with this Location (a path on this server or a full URL). */
  redirectTo?: string;
  /** The first response that crosses each offset is cut there (socket destroyed); each offset is used once. */
  cutAt?: number[];
  /** Every response is cut after sending this many body bytes. */
  cutAfterBytes?: number;
  /** The first response that reaches this offset stops sending and keeps the socket open (once). */
  stallAt?: number;
  /** Announce a Content-Length this many bytes larger than the body sent, then end the response. */
  extraContentLength?: number;
  /** Answer Range requests with 200 and the whole file, like a server without range support. */
  ignoreRange?: boolean;
  /** Answer Range requests with 206 even when If-Range does not match (a broken or hostile server). */
  ignoreIfRange?: boolean;
  /** From request number `afterRequests` (0-based) on, serve the file at `path` instead: an upload
   *  that replaced the file between two requests (its own ETag and Last-Modified with it). */
  replacedBy?: { path: string; afterRequests: number };
  /** Use this ETag instead of the one derived from size and mtime; null sends none. */
  etag?: string | null;
  /** Send no Last-Modified header. */
  noLastModified?: boolean;
  /** Delay the response headers by this many milliseconds. */
  delayMs?: number;
  /** Answer 401 unless the request carries HTTP Basic credentials "user:password". */
  basicAuth?: string;
}

/** One request as the server saw it, for assertions (e.g. that a resume sent `Range`). */
export interface FixtureLogEntry {
  method: string;
  path: string;
  status: number;
  range?: string;
  ifRange?: string;
  ifNoneMatch?: string;
  authorization?: string;
  /** Body bytes actually written before the response ended or was cut. */
  bytesSent: number;
}

export interface FixtureServerOptions {
  /** Folder whose files are served at `/<relative path>`. */
  root: string;
  /** Initial behaviours by URL path ("/a.raw") or "*" for every path. */
  behaviours?: Record<string, FixtureBehaviour>;
  /** Serve HTTPS with this key and certificate (PEM). */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** Body chunk size in bytes (default 64 KiB). */
  chunkSize?: number;
  /** Address to listen on (default 127.0.0.1; QEMU user networking reaches it as 10.0.2.2). */
  host?: string;
  /** Port (default: a free one). */
  port?: number;
}

export interface FixtureServer {
  /** Base URL without trailing slash, e.g. http://127.0.0.1:41234 */
  url: string;
  port: number;
  log: FixtureLogEntry[];
  /** Sets (or with undefined, clears) the behaviour of a path. */
  behave(path: string, behaviour: FixtureBehaviour | undefined): void;
  close(): Promise<void>;
}

/** Starts a fixture server (by default on 127.0.0.1, on a free port). */
export async function startFixtureServer(options: FixtureServerOptions): Promise<FixtureServer> {
  const behaviours = new Map<string, FixtureBehaviour>();
  const statusCount = new Map<string, number>();
  const requestCount = new Map<string, number>();
  const log: FixtureLogEntry[] = [];
  const sockets = new Set<Socket>();
  const chunkSize = options.chunkSize ?? 65536;
  const setBehaviour = (path: string, behaviour: FixtureBehaviour | undefined): void => {
    if (behaviour === undefined) behaviours.delete(path);
    else behaviours.set(path, { ...behaviour, cutAt: behaviour.cutAt ? [...behaviour.cutAt] : undefined });
    statusCount.delete(path);
    requestCount.delete(path);
  };
  for (const [path, behaviour] of Object.entries(options.behaviours ?? {})) setBehaviour(path, behaviour);

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const behaviour = { ...behaviours.get("*"), ...behaviours.get(path) };
    const entry: FixtureLogEntry = { method: req.method ?? "GET", path, status: 0, bytesSent: 0 };
    if (req.headers.range) entry.range = req.headers.range;
    if (req.headers["if-range"]) entry.ifRange = String(req.headers["if-range"]);
    if (req.headers["if-none-match"]) entry.ifNoneMatch = String(req.headers["if-none-match"]);
    if (req.headers.authorization) entry.authorization = req.headers.authorization;
    log.push(entry);
    const respond = (): void => serve(req, res, path, behaviour, entry);
    if (behaviour.delayMs) setTimeout(respond, behaviour.delayMs);
    else respond();
  };

  function serve(req: IncomingMessage, res: ServerResponse, path: string, b: FixtureBehaviour, entry: FixtureLogEntry): void {
    const end = (status: number, headers: Record<string, string> = {}, body = ""): void => {
      entry.status = status;
      res.writeHead(status, { "content-length": String(Buffer.byteLength(body)), ...headers });
      res.end(body);
    };
    if (b.status !== undefined) {
      const seen = statusCount.get(path) ?? 0;
      statusCount.set(path, seen + 1);
      const applies = b.statusAfter !== undefined ? seen >= b.statusAfter : b.statusTimes === undefined || seen < b.statusTimes;
      if (applies) return end(b.status, {}, `status ${b.status}\n`);
    }
    if (b.basicAuth !== undefined && req.headers.authorization !== `Basic ${Buffer.from(b.basicAuth).toString("base64")}`) {
      return end(401, { "www-authenticate": 'Basic realm="netimport test"' }, "unauthorized\n");
    }
    if (b.redirectTo !== undefined) return end(302, { location: b.redirectTo });

    const nth = requestCount.get(path) ?? 0;
    requestCount.set(path, nth + 1);
    const servedPath = b.replacedBy && nth >= b.replacedBy.afterRequests ? b.replacedBy.path : path;
    const file = join(options.root, normalize(servedPath).replace(/^(\.\.(\/|$))+/, ""));
    let stat;
    try {
      stat = statSync(file);
    } catch {
      return end(404, {}, "not found\n");
    }
    if (!stat.isFile()) return end(404, {}, "not found\n");

    const etag = b.etag === undefined ? `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"` : b.etag;
    const lastModified = b.noLastModified ? undefined : stat.mtime.toUTCString();
    const headers: Record<string, string> = { "accept-ranges": "bytes", "content-type": "application/octet-stream" };
    if (etag) headers.etag = etag;
    if (lastModified) headers["last-modified"] = lastModified;

    const ifNoneMatch = req.headers["if-none-match"];
    if (ifNoneMatch && etag && ifNoneMatch.split(/\s*,\s*/).includes(etag)) {
      entry.status = 304;
      res.writeHead(304, headers);
      return void res.end();
    }

    let start = 0;
    let last = stat.size - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    const ifRange = req.headers["if-range"];
    const validatorHolds = b.ignoreIfRange || ifRange === undefined || ifRange === etag || ifRange === lastModified;
    if (range && !b.ignoreRange && validatorHolds) {
      start = Number(range[1]);
      if (range[2]) last = Math.min(last, Number(range[2]));
      if (start >= stat.size) {
        return end(416, { "content-range": `bytes */${stat.size}` });
      }
      status = 206;
      headers["content-range"] = `bytes ${start}-${last}/${stat.size}`;
    }
    const length = Math.max(0, last - start + 1);
    headers["content-length"] = String(length + (b.extraContentLength ?? 0));
    entry.status = status;
    res.writeHead(status, headers);
    if (req.method === "HEAD") return void res.end();

    // Where this response must stop: cut (destroy), stall (keep open) or end short (wrong length).
    let stopAt = start + length;
    let stop: "end" | "cut" | "stall" = "end";
    const consider = (offset: number, kind: "cut" | "stall"): boolean => {
      if (offset >= start && offset < stopAt) {
        stopAt = offset;
        stop = kind;
        return true;
      }
      return false;
    };
    const cutIndex = (b.cutAt ?? []).findIndex((offset) => offset >= start && offset < start + length);
    if (cutIndex >= 0 && consider(b.cutAt![cutIndex]!, "cut")) {
      b.cutAt!.splice(cutIndex, 1); // the stored array itself: each offset cuts once
    }
    if (b.cutAfterBytes !== undefined) consider(start + b.cutAfterBytes, "cut");
    if (b.stallAt !== undefined && consider(b.stallAt, "stall")) {
      const own = behaviours.get(path)?.stallAt !== undefined ? behaviours.get(path) : behaviours.get("*");
      if (own) delete own.stallAt;
    }

    const body = stopAt > start
      ? createReadStream(file, { start, end: stopAt - 1, highWaterMark: chunkSize })
      : undefined;
    const finish = (): void => {
      if (stop === "cut") res.socket?.destroy();
      else if (stop === "end") res.end();
      // "stall": leave the socket open and silent; close() destroys it.
    };
    if (!body) return finish();
    body.on("data", (chunk: Buffer | string) => {
      entry.bytesSent += chunk.length;
      if (!res.write(chunk)) {
        body.pause();
        res.once("drain", () => body.resume());
      }
    });
    body.on("end", finish);
    body.on("error", () => res.socket?.destroy());
    res.on("close", () => body.destroy());
  }

  const server: Server = options.tls
    ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, handler)
    : createHttpServer(handler);
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("secureConnection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${options.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    log,
    behave: setBehaviour,
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
