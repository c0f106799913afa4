// `netimport pull [OPTIONS] URL DEST`: the command line of the pull, its signals and its exit codes.
// Exit 0 only when DEST holds the complete verified image; every failure is one line on stderr
// starting with "netimport: " (exit 1); usage errors exit 2. Every line it prints shows URLs without
// their credentials and control characters escaped.
import { resolve } from "node:path";
import type { ImageType } from "../generator/import-request.ts";
import { logText } from "../generator/log-line.ts";
import { inferImageType } from "../generator/url.ts";
import { pull, type PullOptions } from "./pull.ts";
import { parseMemoryLimit } from "./ram-space.ts";
import { commandLine, UsageError } from "./command-line.ts";
import { completeSecretUrls } from "./url-secrets.ts";
import { parseVerifyMode } from "./verify.ts";

const PULL_USAGE = `Usage: netimport pull [--type=raw|tar] [--verify=no|checksum|signature|sha256:HEX] [--keyring=FILE]
                      [--mirror=URL]... [--ca-file=FILE] [--idle-timeout=SEC] [--retries=N] [--retry-delay=SEC]
                      [--proxy=URL] [--http-proxy=URL] [--https-proxy=URL] [--no-proxy=HOSTS]
                      [--secrets-from=FILE]... [--image-memory-max=SIZE|PERCENT%] [--progress-interval=SEC] [--ro]
                      URL DEST
`;

/** A number in [min, max]: the bounds keep timers within what setTimeout() can hold (2^31 ms). */
function number(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < min) throw new UsageError(`invalid --${name}=${value}`);
  if (n > max) throw new UsageError(`invalid --${name}=${value} (at most ${max})`);
  return n;
}

function url(name: string, value: string): string {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new UsageError(`invalid --${name}=${value} (not a URL)`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new UsageError(`invalid --${name}=${value} (http:// or https://)`);
  return value;
}

const DAY = 86400;

const PULL_OPTIONS = {
  type: { type: "string" }, verify: { type: "string" }, keyring: { type: "string" }, mirror: { type: "string", multiple: true },
  "ca-file": { type: "string" }, "idle-timeout": { type: "string" }, retries: { type: "string" }, "retry-delay": { type: "string" },
  proxy: { type: "string" }, "http-proxy": { type: "string" }, "https-proxy": { type: "string" }, "no-proxy": { type: "string" },
  "secrets-from": { type: "string", multiple: true }, "image-memory-max": { type: "string" }, "progress-interval": { type: "string" },
  ro: { type: "boolean" }, rw: { type: "boolean" },
} as const;

/**
 * Parses the arguments of `netimport pull` (without the `pull`) into pull options.
 *
 * @example parsePullArguments(["--verify=no", "http://o/os.raw.zst", "/run/machines/os.raw"])
 */
export function parsePullArguments(argv: readonly string[]): PullOptions & { secretsFrom?: string[] } {
  const positional: string[] = [];
  const mirrors: string[] = [];
  const secretsFrom: string[] = [];
  const options: Partial<PullOptions> = {};
  let type: ImageType | undefined;
  let verify = "signature"; // systemd-pull's default
  for (const token of commandLine(argv, PULL_OPTIONS)) {
    if (token.kind === "positional") {
      positional.push(token.value);
      continue;
    }
    const { name } = token;
    if (name === "ro" || name === "rw") {
      options.readOnly = name === "ro";
      continue;
    }
    const value = token.value!; // a string option always has one (commandLine() refuses it without)
    switch (name) {
      case "type":
        if (value !== "raw" && value !== "tar") throw new UsageError(`invalid --type=${value} (expected raw or tar)`);
        type = value;
        break;
      case "verify": verify = value; break;
      case "keyring": options.keyring = value; break;
      case "mirror": mirrors.push(url(name, value)); break;
      case "ca-file": options.caFile = value; break;
      case "idle-timeout": options.idleTimeoutSeconds = number(name, value, 0.001, DAY); break;
      case "retries": options.retries = Math.floor(number(name, value, 0, 1000)); break;
      case "retry-delay": options.retryDelaySeconds = number(name, value, 0, 3600); break;
      case "proxy":
        options.httpProxy = value ? url(name, value) : undefined;
        options.httpsProxy = options.httpProxy;
        break;
      case "http-proxy": options.httpProxy = value ? url(name, value) : undefined; break;
      case "https-proxy": options.httpsProxy = value ? url(name, value) : undefined; break;
      case "no-proxy": options.noProxy = value || undefined; break;
      case "secrets-from": secretsFrom.push(value); break;
      case "image-memory-max":
        try {
          options.memoryLimit = parseMemoryLimit(value);
        } catch (error) {
          throw new UsageError(`invalid --image-memory-max=${value}: ${(error as Error).message}`);
        }
        break;
      case "progress-interval": options.progressIntervalSeconds = number(name, value, 0, DAY); break;
      default: throw new UsageError(`unknown option --${name}`); // in PULL_OPTIONS but not here
    }
  }
  if (positional.length !== 2) throw new UsageError(`expected URL and DEST, got ${positional.length} argument(s)`);
  const [imageUrl, dest] = positional as [string, string];
  let parsed: URL;
  try {
    parsed = new URL(imageUrl);
  } catch {
    throw new UsageError(`invalid URL ${imageUrl}`);
  }
  if (!["http:", "https:", "file:"].includes(parsed.protocol)) throw new UsageError(`unsupported URL ${imageUrl} (http, https or file)`);
  if (dest === "" || dest.endsWith("/") || resolve(dest) === "/") throw new UsageError(`invalid DEST ${dest} (a path to create)`);
  let verifyMode;
  try {
    verifyMode = parseVerifyMode(verify);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  return {
    ...options, url: imageUrl, dest: resolve(dest), type: type ?? inferImageType(imageUrl), verify: verifyMode, mirrors,
    ...(secretsFrom.length ? { secretsFrom } : {}),
  };
}

/**
 * The URLs given with "***" in place of their credentials, completed from the `--secrets-from` files
 * (they never were on the command line).
 */
export async function withSecrets(options: PullOptions & { secretsFrom?: string[] }): Promise<PullOptions> {
  const { secretsFrom = [], ...rest } = options;
  const mirrors = rest.mirrors ?? [];
  const proxies = [rest.httpProxy, rest.httpsProxy];
  const all = await completeSecretUrls([rest.url, ...mirrors, ...proxies.filter((p) => p !== undefined)], secretsFrom);
  const [url, ...others] = all as [string, ...string[]];
  const done: PullOptions = { ...rest, url, mirrors: others.slice(0, mirrors.length) };
  let next = mirrors.length;
  if (rest.httpProxy !== undefined) done.httpProxy = others[next++];
  if (rest.httpsProxy !== undefined) done.httpsProxy = others[next++];
  return done;
}

/** Runs `netimport pull`; resolves to the exit code. SIGTERM/SIGINT abort and clean up. */
export async function runPull(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parsePullArguments>;
  try {
    parsed = parsePullArguments(argv);
  } catch (error) {
    process.stderr.write(`${logText(`netimport: pull: ${(error as Error).message}`)}\n${PULL_USAGE}`);
    return 2;
  }
  let options: PullOptions;
  try {
    options = await withSecrets(parsed);
  } catch (error) {
    process.stderr.write(`${logText(`netimport: ${(error as Error).message}`)}\n`);
    return 1;
  }
  const info = (line: string): void => void process.stdout.write(`${logText(line)}\n`);
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => controller.abort(new Error(`stopped by ${signal} before the image was complete; ${options.dest} left as it was`));
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    const result = await pull({ ...options, signal: controller.signal, info });
    info(result.status === "up-to-date"
      ? `${options.dest} is already up to date with ${result.url}`
      : `pulled ${result.url} into ${options.dest}${result.sha256 === undefined ? "" : ` (sha256 ${result.sha256})`}`);
    return 0;
  } catch (error) {
    const message = oneLine(error);
    const named = message.includes(options.url) || message.includes(options.dest) || message.includes("://");
    process.stderr.write(`${logText(`netimport: ${named ? message : `pull of ${options.url} failed: ${message}`}`)}\n`);
    return 1;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}

function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s*\n\s*/g, " ").trim() || "failed";
}
