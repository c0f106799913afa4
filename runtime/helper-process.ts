// The one way a pull runs another program on its bytes (a system decoder, GNU tar): spawned with its
// stdin piped, its stdout piped or given a file, its stderr kept (the last lines say why it failed).
// Writing respects the pipe's backpressure; a helper that stops reading (it failed, or it is done)
// is told apart from one that reads, so the caller asks its exit status why instead of failing on EPIPE.
import { spawn, type ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";

/** How a helper ended; `error` when it could not be started at all. */
export interface HelperExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

export interface HelperOptions {
  /** Where its stdout goes: a pipe to read (default), a file descriptor, or nowhere. */
  stdout?: "pipe" | "ignore" | number;
  /** The name it sees as argv[0]. */
  argv0?: string;
  env?: NodeJS.ProcessEnv;
}

export interface Helper {
  /** Its stdout, when piped. */
  readonly stdout: Readable | null;
  /** Settles once it exited and its pipes closed; never rejects. */
  readonly exited: Promise<HelperExit>;
  /**
   * Hands `chunk` to its stdin; resolves once the pipe took it (at once while the pipe has room),
   * with false when the helper no longer reads (its exit status says why).
   */
  feed(chunk: Uint8Array): Promise<boolean>;
  /** Closes its stdin, so that it sees the end of its input. */
  endInput(chunk?: Uint8Array): void;
  /** The last few KB it wrote to stderr. */
  stderr(): string;
  /** Kills it if it still runs; resolves once it exited. */
  stop(): Promise<HelperExit>;
}

const STDERR_KEPT = 8000;

/**
 * Starts `command args` as a helper of the pull.
 *
 * ```ts
 * const zstd = startHelper("/usr/bin/zstd", ["-dcq", "--sparse"], { stdout: file.fd });
 * if (!(await zstd.feed(chunk))) throw judge(await zstd.exited, zstd.stderr());
 * ```
 */
export function startHelper(command: string, args: readonly string[], options: HelperOptions = {}): Helper {
  const child: ChildProcess = spawn(command, args, {
    stdio: ["pipe", options.stdout ?? "pipe", "pipe"],
    ...(options.argv0 ? { argv0: options.argv0 } : {}),
    ...(options.env ? { env: options.env } : {}),
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (text: string) => { stderr = (stderr + text).slice(-STDERR_KEPT); });
  const exited = new Promise<HelperExit>((resolve) => {
    child.once("error", (error) => { if (child.pid === undefined) resolve({ code: null, signal: null, error }); });
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  const stdin = child.stdin!;
  // EPIPE once it stopped reading: feed() reports that as false, and the exit status says why.
  stdin.on("error", () => {});
  const reading = () => !stdin.destroyed && !stdin.writableEnded;

  return {
    stdout: child.stdout,
    exited,
    feed(chunk) {
      if (!reading()) return Promise.resolve(chunk.length === 0);
      if (chunk.length === 0 || stdin.write(chunk)) return Promise.resolve(true);
      return new Promise((resolve) => {
        const settle = () => {
          stdin.off("drain", settle);
          stdin.off("close", settle);
          resolve(!stdin.destroyed);
        };
        stdin.on("drain", settle);
        stdin.on("close", settle);
      });
    },
    endInput(chunk) {
      if (reading()) stdin.end(chunk);
    },
    stderr: () => stderr,
    stop() {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill("SIGKILL");
      return exited;
    },
  };
}
