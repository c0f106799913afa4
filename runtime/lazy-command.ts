// `netimport lazy [PULL OPTIONS] --device-link=PATH --pid-file=PATH [--outage-limit=SEC] URL DEST`: serves
// the raw image at URL as a block device at once and copies it to DEST in the background (lazy-daemon.ts).
// The command is what systemd starts (Type=oneshot): it starts the server as a process of its own, waits
// until the device is connected and linked, and exits 0; or prints the server's one-line reason and exits 1.
// The server is a root storage daemon (argv[0] "@…"), so the command's process, whose argv[0] systemd
// knows, is not it. The pull's options mean what they mean for `netimport pull` (parsed by the same code).
import { spawn } from "node:child_process";
import { writeSync } from "node:fs";
import { isSea } from "node:sea";
import { logText } from "../generator/log-line.ts";
import { UsageError } from "./command-line.ts";
import { parsePullArguments, withSecrets } from "./pull-command.ts";
import type { PullOptions } from "./pull.ts";

const USAGE = `Usage: netimport lazy [--verify=no|checksum|signature|sha256:HEX] [--keyring=FILE] [--mirror=URL]...
                      [--ca-file=FILE] [--idle-timeout=SEC] [--retries=N] [--retry-delay=SEC]
                      [--proxy=URL] [--http-proxy=URL] [--https-proxy=URL] [--no-proxy=HOSTS]
                      [--secrets-from=FILE]... [--image-memory-max=SIZE|PERCENT%] [--ro]
                      --device-link=PATH --pid-file=PATH [--outage-limit=SEC] URL DEST
`;

/** Set in the server's environment: the same command line then runs the server itself. */
const SERVER_ENV = "NETIMPORT_LAZY_SERVER";

export interface LazyOptions {
  pull: PullOptions & { secretsFrom?: string[] };
  /** Where the NBD device is linked (the attach unit's IMAGE). */
  deviceLink: string;
  pidFile: string;
  /** How long a read of a block not yet local waits for the server before it fails (ms). */
  outageLimitMs: number;
}

const LAZY_ONLY = ["--device-link=", "--pid-file=", "--outage-limit="];
const DEFAULT_OUTAGE_LIMIT_SEC = 300;

/**
 * Parses `netimport lazy`'s arguments: its own options, and the rest as `netimport pull` takes them.
 *
 * @example parseLazyArguments(["--verify=no", "--device-link=/run/l/os.nbd", "--pid-file=/run/l/os.pid", "http://o/os.raw", "/run/machines/os.raw"])
 */
export function parseLazyArguments(argv: readonly string[]): LazyOptions {
  const own = new Map<string, string>();
  const rest: string[] = [];
  for (const arg of argv) {
    const option = LAZY_ONLY.find((prefix) => arg.startsWith(prefix));
    if (option) own.set(option.slice(2, -1), arg.slice(option.length));
    else rest.push(arg);
  }
  const pull = parsePullArguments(rest);
  if (pull.type !== "raw") throw new UsageError("lazy serves raw images only (--type=raw)");
  if (!/^https?:/.test(pull.url)) throw new UsageError(`lazy reads the image with HTTP Range requests: ${pull.url} is no http:// or https:// URL`);
  const deviceLink = own.get("device-link");
  const pidFile = own.get("pid-file");
  if (!deviceLink?.startsWith("/")) throw new UsageError("--device-link=PATH (absolute) is required");
  if (!pidFile?.startsWith("/")) throw new UsageError("--pid-file=PATH (absolute) is required");
  const limit = own.get("outage-limit") ?? String(DEFAULT_OUTAGE_LIMIT_SEC);
  const seconds = Number(limit);
  if (limit.trim() === "" || !Number.isFinite(seconds) || seconds < 0 || seconds > 86400 * 365) throw new UsageError(`invalid --outage-limit=${limit}`);
  return { pull, deviceLink, pidFile, outageLimitMs: seconds * 1000 };
}

/** Runs `netimport lazy`: the starter (what systemd runs), or in the started process the server. */
export async function runLazy(argv: string[]): Promise<number> {
  let options: LazyOptions;
  try {
    options = parseLazyArguments(argv);
  } catch (error) {
    process.stderr.write(`${logText(`netimport: lazy: ${(error as Error).message}`)}\n${USAGE}`);
    return 2;
  }
  if (process.env[SERVER_ENV] === "1") {
    try {
      const { serveLazily } = await import("./lazy-daemon.ts");
      const pull = await withSecrets(options.pull);
      return await serveLazily({ ...options, pull });
    } catch (error) {
      tellStarter(`FAILED ${(error as Error).message.replace(/\s*\n\s*/g, " ")}`);
      return 1;
    }
  }
  return startServer(argv);
}

/** Tells the starter, on fd 3, whether the device is ready: `READY`, or `FAILED <reason>`. */
export function tellStarter(line: string): void {
  try {
    writeSync(3, `${line}\n`);
  } catch {
    // The starter is gone (systemd timed it out): nothing to tell.
  }
}

/**
 * Starts the server (this executable, same arguments) in a session of its own, with no standard output
 * (the initrd's journal stream ends at switch-root; it logs to the kernel log) and a pipe on fd 3 on
 * which it says `READY` or `FAILED <reason>`.
 */
async function startServer(argv: string[]): Promise<number> {
  const self = isSea() ? [] : [...process.execArgv, process.argv[1]!];
  const child = spawn(process.execPath, [...self, "lazy", ...argv], {
    detached: true,
    stdio: ["ignore", "ignore", "ignore", "pipe"],
    env: { ...process.env, [SERVER_ENV]: "1" },
  });
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  let said = "";
  pipe.setEncoding("utf8");
  pipe.on("data", (text: string) => { said += text; });
  const exit = new Promise<string>((resolve) => {
    child.once("error", (error) => resolve(`cannot start the server: ${error.message}`));
    child.once("exit", (code, signal) => resolve(`the server ended (${signal ?? `exit code ${code}`}) before the device was ready`));
  });
  const verdict = await Promise.race([
    new Promise<string>((resolve) => pipe.on("data", () => { if (said.includes("\n")) resolve(said.split("\n")[0]!); })),
    exit,
  ]);
  if (verdict === "READY") {
    child.unref();
    (pipe as unknown as { destroy(): void }).destroy();
    return 0;
  }
  const reason = verdict.startsWith("FAILED ") ? verdict.slice(7) : verdict;
  process.stderr.write(`${logText(`netimport: lazy: ${reason}`)}\n`);
  return 1;
}
