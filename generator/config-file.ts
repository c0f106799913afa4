// netimport.conf and its `.conf.d/*.conf` drop-ins: systemd's config syntax (systemd-conf.ts), and
// what each key means. Values are checked here, each with the file and line it came from, so a bad
// value is reported once at boot and never reaches a unit file. URL values keep the file they were
// set in: a URL with credentials is shown redacted and the runtime reads it back from that file.
import { hasControlCharacter } from "./control-characters.ts";
import { EMERGENCY_ACTION_RULE, isEmergencyAction } from "./emergency-action.ts";
import type { Actions, DownloadSettings, RequestOrigin, SourcedUrl } from "./import-request.ts";
import type { LogLine } from "./log-line.ts";
import { parseMemorySize } from "./memory-size.ts";
import { parseBoolean } from "./pull-expression.ts";
import { redactSecrets } from "./redact.ts";
import { parseConf, type ConfContent, type ConfLocation, type ConfValueParser } from "./systemd-conf.ts";
import { isHttpUrl } from "./url.ts";
import { CREDENTIALS_OUTSIDE_USERINFO_RULE, hasCredentialsOutsideUserinfo } from "./url-credentials.ts";

export interface ConfigText {
  /** The path systemd and the runtime know the file by (without NETIMPORT_ROOT). */
  path: string;
  /** The bytes as read; a string is taken as UTF-8 text. */
  content: ConfContent;
}

export interface Config {
  /** `[Import] Pull=` expressions, in the order read. */
  pulls: { expression: string; origin: RequestOrigin }[];
  settings: DownloadSettings;
  actions: Actions;
}

/** A key's meaning: applies the value to the config, or logs why not. */
type Apply = (config: Config, value: string, at: ConfLocation, log: LogLine[]) => void;

function where(at: ConfLocation): string {
  return `${at.path}:${at.line}`;
}

function ignore(log: LogLine[], at: ConfLocation, rule: string, value: string): void {
  log.push({ level: "warning", message: `${where(at)}: ${at.key}= ${rule}, ignoring: ${value}` });
}

/** A value as its setting takes it, or the rule it broke. */
type Parsed<T> = { value: T } | { rule: string };
type Parse<T> = (value: string, at: ConfLocation) => Parsed<T>;

/** A setting with a single value: later assignments override, an empty one resets. */
function single<O extends object, K extends keyof O>(parse: Parse<O[K]>, target: (config: Config) => O, key: K): Apply {
  return (config, value, at, log) => {
    const object = target(config);
    if (value === "") {
      delete object[key];
      return;
    }
    const parsed = parse(value, at);
    if ("rule" in parsed) ignore(log, at, parsed.rule, value);
    else object[key] = parsed.value;
  };
}

const settings = (config: Config): DownloadSettings => config.settings;
const actions = (config: Config): Actions => config.actions;

const nonNegativeInteger: Parse<number> = (value) =>
  /^[0-9]+$/.test(value) && Number.isSafeInteger(Number(value)) ? { value: Number(value) } : { rule: "must be a non-negative integer" };
const nonNegativeNumber: Parse<number> = (value) =>
  /^[0-9]+(\.[0-9]+)?$/.test(value) ? { value: Number(value) } : { rule: "must be a non-negative number" };
const absolutePath: Parse<string> = (value) => {
  if (!value.startsWith("/")) return { rule: "is not an absolute path" };
  if (hasControlCharacter(value)) return { rule: "must not contain control characters" };
  // Log lines would show such a path redacted, the unit as it is: refuse the ambiguity.
  if (redactSecrets(value) !== value) return { rule: "looks like it holds a URL with a user name and password" };
  return { value };
};
/** The URL with the file it was set in, for `--secrets-from=`. */
const httpUrl: Parse<SourcedUrl> = (value, at) => {
  if (!isHttpUrl(value)) return { rule: "is not an http:// or https:// URL" };
  if (hasCredentialsOutsideUserinfo(value)) return { rule: CREDENTIALS_OUTSIDE_USERINFO_RULE };
  return { value: { url: value, source: at.path } };
};
const boolean: Parse<boolean> = (value) => {
  const parsed = parseBoolean(value);
  return parsed === undefined ? { rule: "is not a boolean (yes/no, true/false, on/off, 1/0)" } : { value: parsed };
};
const action: Parse<string> = (value) =>
  isEmergencyAction(value) ? { value } : { rule: `is not an action systemd knows (${EMERGENCY_ACTION_RULE})` };
const memorySize: Parse<string> = (value) => {
  const result = parseMemorySize(value);
  return result.ok ? { value: result.value } : { rule: `is invalid: ${result.error}` };
};
/**
 * Host names, domains (`.lan`), addresses or networks (`10.0.0.0/8`, `[::1]`), optionally with a
 * port or a `*` wildcard, separated by commas or blanks; passed on comma-separated.
 */
const hostList: Parse<string> = (value) => {
  const hosts = value.split(/[,\s]+/).filter(Boolean);
  return hosts.every((host) => /^[A-Za-z0-9._*:/[\]-]+$/.test(host)) ? { value: hosts.join(",") } : { rule: "must be a list of host names, domains or addresses" };
};

/** Every key, by section, as systemd's ConfigItemLookup tables list them. */
const KEYS = new Map<string, Map<string, Apply>>([
  ["Import", new Map<string, Apply>([
    ["Pull", (config, value, at) => {
      if (value === "") config.pulls = [];
      else config.pulls.push({ expression: value, origin: { path: at.path, what: `[Import] Pull= (line ${at.line})` } });
    }],
    ["SuccessAction", single(action, actions, "success")],
    ["FailureAction", single(action, actions, "failure")],
  ])],
  ["Download", new Map<string, Apply>([
    ["Mirror", (config, value, at, log) => {
      if (value === "") {
        config.settings.mirrors = [];
        return;
      }
      for (const url of value.split(/[ \t\n\r]+/).filter(Boolean)) {
        const parsed = httpUrl(url, at);
        if ("rule" in parsed) ignore(log, at, parsed.rule, url);
        else config.settings.mirrors.push(parsed.value);
      }
    }],
    ["CAFile", single(absolutePath, settings, "caFile")],
    ["IdleTimeoutSec", single(nonNegativeNumber, settings, "idleTimeoutSec")],
    ["Retries", single(nonNegativeInteger, settings, "retries")],
    ["HTTPSProxy", single(httpUrl, settings, "httpsProxy")],
    ["HTTPProxy", single(httpUrl, settings, "httpProxy")],
    ["NoProxy", single(hostList, settings, "noProxy")],
    ["ImageMemoryMax", single(memorySize, settings, "imageMemoryMax")],
  ])],
  ["Lazy", new Map<string, Apply>([
    ["Default", single(boolean, settings, "lazyDefault")],
    ["CopyDirectory", single(absolutePath, settings, "lazyCopyDirectory")],
    ["OutageLimitSec", single(nonNegativeNumber, settings, "lazyOutageLimitSec")],
  ])],
  ["Verify", new Map<string, Apply>([
    ["Keyring", single(absolutePath, settings, "keyring")],
  ])],
]);

const SECTIONS = [...KEYS.keys()];

/**
 * Applies config files in order (the main file, then drop-ins): single values override, lists
 * append, an empty assignment resets. A file systemd would stop reading early is read up to there;
 * the files after it are still read.
 *
 * @example parseConfigFiles([{ path: "/etc/netimport/netimport.conf", content: "[Download]\nRetries=3\n" }], log)
 */
export function parseConfigFiles(files: readonly ConfigText[], log: LogLine[]): Config {
  const config: Config = { pulls: [], settings: { mirrors: [] }, actions: {} };
  const lookup = (section: string, key: string): ConfValueParser | undefined => {
    const apply = KEYS.get(section)?.get(key);
    return apply && ((value, at) => apply(config, value, at, log));
  };
  for (const file of files) parseConf(file.path, file.content, { sections: SECTIONS, lookup }, log);
  return config;
}
