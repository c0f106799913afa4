// A static HTTP server for the guests (reached at http://10.0.2.2:PORT/ through QEMU's user network):
// GET/HEAD with Range and ETag, a request log the scenarios assert on, and outages: "die mid-download,
// come back later" for the resume scenario, and "die once this much of a file was served, in however
// many requests" for a lazy image, which is read in many Range requests; and slow stretches of a file
// (a lazy image's background copy is held back where the boot itself never reads).
import { createReadStream, statSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { join, normalize } from "node:path";
import { once } from "node:events";

export type LoggedRequest = { method: string; path: string; range?: string; status: number; bytes: number; complete: boolean };

/**
 * The whole server goes away for DOWN_MS (every connection cut, nothing listening), then listens again.
 * It starts once PATH has been served AFTER_BYTES in one response (a download that must resume), or
 * AFTER_TOTAL_BYTES over all its responses since the outage was armed (a lazy image, read in Range requests).
 */
export type Outage = { path: string; downMs: number } & ({ afterBytes: number } | { afterTotalBytes: number });

/** An outage that happened: its path, when it began and ended (Date.now() ms), the bytes of its path served since arming. */
export type OutageRecord = { path: string; began: number; ended?: number; servedBytes: number };

/** Responses for PATH whose bytes overlap START..END-1 are sent at BYTES_PER_SECOND, all of them; the others at full speed. */
export type SlowStretch = { path: string; start: number; end: number; bytesPerSecond: number };

export type FileServer = {
  port: number;
  url: (path: string) => string;
  log: LoggedRequest[];
  /** Arms one outage: the next download of its path that reaches its byte count sets it off. */
  armOutage: (outage: Outage) => void;
  /** Resolves when the outage that began last is over (the server listens again); at once when none began. */
  outageDone: () => Promise<void>;
  /** The outages that began, in order, each with its end once the server listens again. */
  outages: OutageRecord[];
  /** Makes one stretch of a file slow from now on (the responses that overlap it); slow(undefined) ends that. */
  slow: (stretch: SlowStretch | undefined) => void;
  close: () => Promise<void>;
};

function parseRange(header: string | undefined, size: number): { start: number; end: number } | "invalid" | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return "invalid";
  const [, from = "", to = ""] = match;
  if (from === "" && to === "") return "invalid";
  const start = from === "" ? Math.max(0, size - Number(to)) : Number(from);
  const end = from === "" || to === "" ? size - 1 : Math.min(Number(to), size - 1);
  return start > end || start >= size ? "invalid" : { start, end };
}

/**
 * Serves ROOT on 127.0.0.1 (PORT 0: any free port); the guest URL for a file is url("dir/file").
 * @example const server = await serveFolder(images.dir); server.url("ext4/root-ext4.raw.zst")
 */
export async function serveFolder(root: string, port = 0): Promise<FileServer> {
  const log: LoggedRequest[] = [];
  const sockets = new Set<Socket>();
  let armed: { outage: Outage; served: number } | undefined;
  let outageOver: Promise<void> = Promise.resolve();
  const outages: OutageRecord[] = [];
  let slowStretch: SlowStretch | undefined;

  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const path = decodeURIComponent((request.url ?? "/").split("?")[0] ?? "/").replace(/^\/+/, "");
    const entry: LoggedRequest = { method: request.method ?? "", path, status: 0, bytes: 0, complete: false };
    if (request.headers.range) entry.range = request.headers.range;
    log.push(entry);
    const file = join(root, normalize(path));
    let stat;
    try {
      stat = file.startsWith(root) ? statSync(file) : undefined;
    } catch { stat = undefined; }
    if (!stat?.isFile()) {
      entry.status = 404;
      response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    const etag = `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
    const ifRange = request.headers["if-range"];
    const range = ifRange && ifRange !== etag ? undefined : parseRange(request.headers.range, stat.size);
    if (range === "invalid") {
      entry.status = 416;
      response.writeHead(416, { "content-range": `bytes */${stat.size}` }).end();
      return;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? stat.size - 1;
    entry.status = range ? 206 : 200;
    response.writeHead(entry.status, {
      "content-length": String(end - start + 1), "accept-ranges": "bytes", etag,
      "last-modified": stat.mtime.toUTCString(), "content-type": "application/octet-stream",
      ...(range ? { "content-range": `bytes ${start}-${end}/${stat.size}` } : {}),
    });
    if (request.method === "HEAD") { entry.complete = true; response.end(); return; }
    // A per-response outage only counts responses that began after it was armed.
    const armedAtStart = armed;
    const slow = slowStretch && slowStretch.path === path && start < slowStretch.end && end >= slowStretch.start ? slowStretch : undefined;
    const stream = createReadStream(file, { start, end, highWaterMark: slow ? 4096 : 256 * 1024 });
    stream.on("data", (chunk) => {
      entry.bytes += chunk.length;
      const current = armed;
      if (!current || current.outage.path !== path) return;
      current.served += chunk.length;
      const reached = "afterTotalBytes" in current.outage
        ? current.served >= current.outage.afterTotalBytes
        : current === armedAtStart && entry.bytes >= current.outage.afterBytes;
      if (!reached) return;
      armed = undefined;
      stream.destroy();
      const record: OutageRecord = { path, began: Date.now(), servedBytes: current.served };
      outages.push(record);
      outageOver = goDown(current.outage.downMs).then(() => { record.ended = Date.now(); });
    });
    if (slow) {
      // One 4 KiB chunk, then a pause as long as it takes at the slow rate (the socket never backs up).
      stream.on("data", (chunk) => {
        if (stream.destroyed || response.destroyed) return;
        stream.pause();
        response.write(chunk);
        setTimeout(() => stream.resume(), (1000 * chunk.length) / slow.bytesPerSecond);
      });
      stream.on("end", () => response.end());
      response.on("close", () => stream.destroy());
    } else {
      stream.pipe(response);
    }
    response.on("finish", () => { entry.complete = entry.bytes === end - start + 1; });
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  async function goDown(downMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
    await new Promise((resolve) => setTimeout(resolve, downMs));
    server.listen(boundPort, "127.0.0.1");
    await once(server, "listening");
  }

  server.listen(port, "127.0.0.1");
  await once(server, "listening");
  const boundPort = (server.address() as AddressInfo).port;
  return {
    port: boundPort,
    url: (path) => `http://10.0.2.2:${boundPort}/${path}`,
    log,
    armOutage: (next) => { armed = { outage: next, served: 0 }; },
    outageDone: () => outageOver,
    outages,
    slow: (stretch) => { slowStretch = stretch; },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
