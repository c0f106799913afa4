// A static HTTP server for the guests (reached at http://10.0.2.2:PORT/ through QEMU's user network):
// GET/HEAD with Range and ETag, a request log the scenarios assert on, and a "die mid-download, come
// back later" mode for the resume scenario.
import { createReadStream, statSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { join, normalize } from "node:path";
import { once } from "node:events";

export type LoggedRequest = { method: string; path: string; range?: string; status: number; bytes: number; complete: boolean };

/** After AFTER_BYTES of a response for PATH, the whole server goes away for DOWN_MS, then listens again. */
export type Outage = { path: string; afterBytes: number; downMs: number };

export type FileServer = {
  port: number;
  url: (path: string) => string;
  log: LoggedRequest[];
  /** Arms one outage: the next download of a path hits it. */
  armOutage: (outage: Outage) => void;
  /** Resolves when an armed outage is over (the server listens again). */
  outageDone: () => Promise<void>;
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
  let outage: Outage | undefined;
  let outageOver: Promise<void> = Promise.resolve();

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
    const armed = outage && outage.path === path ? outage : undefined;
    const stream = createReadStream(file, { start, end, highWaterMark: 256 * 1024 });
    stream.on("data", (chunk) => {
      entry.bytes += chunk.length;
      if (armed && entry.bytes >= armed.afterBytes && outage === armed) {
        outage = undefined;
        stream.destroy();
        outageOver = goDown(armed.downMs);
      }
    });
    stream.pipe(response);
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
    armOutage: (next) => { outage = next; },
    outageDone: () => outageOver,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
