// INI config files (`netimport.conf` and its `.conf.d/*.conf` drop-ins), parsed with `ini`.
import { parse } from "ini";
import type { Actions, DownloadSettings, RequestOrigin } from "./import-request.ts";
import type { LogLine } from "./log-line.ts";
import { isHttpUrl } from "./url.ts";

export interface ConfigText {
  path: string;
  text: string;
}

export interface Config {
  /** `[Import] Pull=` expressions, in the order read. */
  pulls: { expression: string; origin: RequestOrigin }[];
  settings: DownloadSettings;
  actions: Actions;
}

type Apply = (config: Config, value: string, where: string, log: LogLine[], file: string) => void;

function positiveNumber(what: string, set: (config: Config, n: number) => void, integer: boolean): Apply {
  return (config, value, where, log) => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) {
      log.push({ level: "warning", message: `${where}: ${what} must be a ${integer ? "non-negative integer" : "non-negative number"}, ignoring: ${value}` });
    } else set(config, n);
  };
}

function path(set: (config: Config, p: string | undefined) => void): Apply {
  return (config, value, where, log) => {
    if (value === "") set(config, undefined);
    else if (!value.startsWith("/")) log.push({ level: "warning", message: `${where}: not an absolute path, ignoring: ${value}` });
    else set(config, value);
  };
}

function proxy(set: (config: Config, p: string | undefined) => void): Apply {
  return (config, value, where, log) => {
    if (value === "") set(config, undefined);
    else if (!isHttpUrl(value)) log.push({ level: "warning", message: `${where}: not an http:// or https:// URL, ignoring: ${value}` });
    else set(config, value);
  };
}

/** Every key we understand, by section. An empty list-valued assignment resets the list. */
const KEYS: Record<string, Record<string, Apply>> = {
  Import: {
    Pull: (config, value, _where, _log, file) => {
      if (value === "") config.pulls = [];
      else config.pulls.push({ expression: value, origin: { path: file, what: "[Import] Pull=" } });
    },
    SuccessAction: (config, value) => { config.actions.success = value || undefined; },
    FailureAction: (config, value) => { config.actions.failure = value || undefined; },
  },
  Download: {
    Mirror: (config, value, where, log) => {
      if (value === "") {
        config.settings.mirrors = [];
        return;
      }
      for (const url of value.split(/\s+/).filter(Boolean)) {
        if (isHttpUrl(url)) config.settings.mirrors.push(url);
        else log.push({ level: "warning", message: `${where}: mirror is not an http:// or https:// URL, ignoring: ${url}` });
      }
    },
    CAFile: path((config, p) => { config.settings.caFile = p; }),
    IdleTimeoutSec: positiveNumber("IdleTimeoutSec=", (config, n) => { config.settings.idleTimeoutSec = n; }, false),
    Retries: positiveNumber("Retries=", (config, n) => { config.settings.retries = n; }, true),
    HTTPSProxy: proxy((config, p) => { config.settings.httpsProxy = p; }),
    HTTPProxy: proxy((config, p) => { config.settings.httpProxy = p; }),
    NoProxy: (config, value) => { config.settings.noProxy = value || undefined; },
  },
  Verify: {
    Keyring: path((config, p) => { config.settings.keyring = p; }),
  },
};

/**
 * Applies config files in order (the main file, then drop-ins): scalar keys override, lists append.
 *
 * @example parseConfigFiles([{ path: "/etc/netimport/netimport.conf", text: "[Download]\nRetries=3\n" }], log)
 */
export function parseConfigFiles(files: ConfigText[], log: LogLine[]): Config {
  const config: Config = { pulls: [], settings: { mirrors: [] }, actions: {} };
  for (const file of files) {
    let parsed: Record<string, unknown>;
    try {
      parsed = parse(file.text, { bracketedArray: false });
    } catch (error) {
      log.push({ level: "err", message: `${file.path}: cannot parse, ignoring the file: ${(error as Error).message}` });
      continue;
    }
    for (const [section, body] of Object.entries(parsed)) {
      const keys = KEYS[section];
      if (!keys || typeof body !== "object" || body === null) {
        log.push({ level: "warning", message: `${file.path}: unknown section [${section}], ignoring it` });
        continue;
      }
      for (const [key, raw] of Object.entries(body as Record<string, unknown>)) {
        const apply = keys[key];
        const where = `${file.path}: [${section}] ${key}=`;
        if (!apply) {
          log.push({ level: "warning", message: `${file.path}: unknown key ${key}= in [${section}], ignoring it` });
          continue;
        }
        const values = Array.isArray(raw) ? raw : [raw];
        for (const value of values) apply(config, value === true ? "" : String(value).trim(), where, log, file.path);
      }
    }
  }
  return config;
}
