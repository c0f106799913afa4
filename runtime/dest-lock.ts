// Keeps two netimport processes apart: one pull per DEST at a time, and one decision at a time about
// the dedicated tmpfs of a folder. A lock is a listening Unix socket in the abstract namespace, named
// after what it protects: binding a name is atomic and exclusive, and the kernel releases it the moment
// its process dies, however it dies, so a SIGKILLed pull never leaves a stale lock behind (a lock file
// would, and Node has no flock()). The name is per network namespace, which a pull never leaves.
import { createHash } from "node:crypto";
import { connect, createServer, type Server } from "node:net";
import { sleep } from "./backoff.ts";

export interface Lock {
  /** Releases the lock (idempotent). */
  release(): Promise<void>;
}

/** Another process holds the lock; `pid` is that process when it said. */
class LockedError extends Error {
  readonly pid: number | undefined;
  constructor(message: string, pid: number | undefined) {
    super(message);
    this.name = "LockedError";
    this.pid = pid;
  }
}

/** The abstract socket name for a lock on `what` (a kind and an absolute path). */
function socketName(kind: string, path: string): string {
  return `\0netimport/${kind}/${createHash("sha256").update(path).digest("hex")}`;
}

function listen(name: string): Promise<Server | undefined> {
  return new Promise((resolve, reject) => {
    // Whoever connects learns the holder's PID (for the error message of a second pull).
    const server = createServer((socket) => socket.end(`${process.pid}\n`));
    server.once("error", (error: NodeJS.ErrnoException) => (error.code === "EADDRINUSE" ? resolve(undefined) : reject(error)));
    server.listen(name, () => {
      server.unref(); // a held lock must not keep the process alive
      resolve(server);
    });
  });
}

/** The PID the holder of `name` reports, if it answers within a moment. */
function holderPid(name: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    let text = "";
    const socket = connect(name);
    const done = () => {
      socket.destroy();
      const pid = Number(text.trim());
      resolve(Number.isInteger(pid) && pid > 0 ? pid : undefined);
    };
    socket.setTimeout(500, done);
    socket.on("data", (chunk) => { text += chunk.toString("latin1"); });
    socket.on("end", done);
    socket.on("error", done);
  });
}

function held(server: Server): Lock {
  let released: Promise<void> | undefined;
  return {
    release: () => (released ??= new Promise<void>((resolve) => server.close(() => resolve()))),
  };
}

/**
 * Takes the lock on DEST for one pull, or throws LockedError at once when another process holds it.
 *
 * @example const lock = await lockDestination("/run/machines/root.raw"); try { … } finally { await lock.release(); }
 */
export async function lockDestination(dest: string): Promise<Lock> {
  const name = socketName("dest", dest);
  const server = await listen(name);
  if (server) return held(server);
  const pid = await holderPid(name);
  throw new LockedError(`another netimport pull${pid ? ` (pid ${pid})` : ""} is writing ${dest}`, pid);
}

/**
 * Takes the lock on a folder's storage (mounting, growing or unmounting its tmpfs, creating or removing
 * an image's temporary in it), waiting while another pull holds it: those moments are short.
 */
export async function lockFolderStorage(dir: string, signal?: AbortSignal): Promise<Lock> {
  const name = socketName("storage", dir);
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    const server = await listen(name);
    if (server) return held(server);
    await sleep(wait, signal);
  }
}
