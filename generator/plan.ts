// Collect and decide: turns the command line, the credential and the config files into the list
// of downloads and how the boot uses them. Pure: every input is passed in, log lines are returned.
import { parseConfigFiles, type ConfigText } from "./config-file.ts";
import type { BootUrl } from "./efi-boot-url.ts";
import { EMERGENCY_ACTION_RULE, isEmergencyAction } from "./emergency-action.ts";
import { isDdiWiring, localPath, type Actions, type DownloadSettings, type ImportRequest, type RequestOrigin } from "./import-request.ts";
import type { LogLine } from "./log-line.ts";
import { keyIs, parseCmdline } from "./proc-cmdline.ts";
import { parsePullExpression, type Dialect } from "./pull-expression.ts";
import { checkSecretSources } from "./secret-sources.ts";
import { systemdLimitViolation } from "./systemd-limits.ts";
import { targetClaims } from "./target-claims.ts";
import { ROOT_HASH_RULE, rootHash, type HashKey } from "./verity-hash.ts";

export interface GeneratorInputs {
  cmdline: string;
  cmdlinePath: string;
  inInitrd: boolean;
  credential?: { path: string; text: string };
  configs: ConfigText[];
  /** systemd's own generator handles `systemd.pull=` and the credential when it is installed. */
  systemdImportGeneratorInstalled: boolean;
  bootUrl: () => BootUrl | undefined;
}

export interface Plan {
  requests: ImportRequest[];
  actions: Actions;
  settings: DownloadSettings;
  log: LogLine[];
}

interface Expression {
  text: string;
  dialect: Dialect;
  origin: RequestOrigin;
}

/**
 * @example makePlan({ cmdline: "rd.systemd.import=raw,root::http://h/r.raw", inInitrd: true, … })
 *   // { requests: [{ local: "r", root: { kind: "attach", partition: "root" }, … }], … }
 */
export function makePlan(inputs: GeneratorInputs): Plan {
  const log: LogLine[] = [];
  const config = parseConfigFiles(inputs.configs, log);
  const actions: Actions = { ...config.actions };
  const expressions: Expression[] = [];
  let rootArgument: string | undefined;
  const hashArguments: Partial<Record<HashKey, string>> = {};
  const prefix = inputs.inInitrd ? "rd." : "";
  const compat = !inputs.systemdImportGeneratorInstalled;
  let compatIgnored = false;

  for (const { key, value } of parseCmdline(inputs.cmdline, inputs.inInitrd)) {
    const origin = { path: inputs.cmdlinePath, what: `${prefix}${key}=` };
    const isImport = keyIs(key, "systemd.import");
    const isPull = keyIs(key, "systemd.pull");
    if (isImport || isPull) {
      if (value === undefined) {
        log.push({ level: "warning", message: `Missing argument for ${prefix}${key}= kernel command line switch, ignoring.` });
      } else if (isPull && !compat) {
        compatIgnored = true;
      } else {
        expressions.push({ text: value, dialect: isImport ? "import" : "pull", origin });
      }
    } else if (keyIs(key, "systemd.import.success_action") || (compat && keyIs(key, "systemd.pull.success_action"))) {
      setAction(actions, "success", `${prefix}${key}`, value, log);
    } else if (keyIs(key, "systemd.import.failure_action") || (compat && keyIs(key, "systemd.pull.failure_action"))) {
      setAction(actions, "failure", `${prefix}${key}`, value, log);
    } else if (key === "root" && value !== undefined) {
      rootArgument = value;
    } else if (key === "roothash" || key === "usrhash") {
      // As fstab-generator reads them: the last one counts, an empty one resets.
      if (value === undefined) log.push({ level: "warning", message: `Missing argument for ${key}= kernel command line switch, ignoring.` });
      else if (value === "") delete hashArguments[key];
      else hashArguments[key] = value;
    }
  }
  if (compatIgnored) {
    log.push({ level: "info", message: `systemd-import-generator is installed and handles ${prefix}systemd.pull=, leaving those entries to it.` });
  }

  if (inputs.credential) {
    if (compat) {
      inputs.credential.text.split("\n").forEach((line, index) => {
        const text = line.trim();
        if (text === "" || text.startsWith("#")) return;
        expressions.push({ text, dialect: "import", origin: { path: inputs.credential!.path, what: `credential import.pull line ${index + 1}` } });
      });
    } else {
      log.push({ level: "info", message: "systemd-import-generator is installed and handles the import.pull credential, leaving it to it." });
    }
  }
  for (const pull of config.pulls) expressions.push({ text: pull.expression, dialect: "import", origin: pull.origin });

  const requests: ImportRequest[] = [];
  const claimTarget = targetClaims();
  for (const expression of expressions) {
    const where = `${expression.origin.what} in ${expression.origin.path}`;
    const result = parsePullExpression(expression.text, {
      dialect: expression.dialect,
      origin: expression.origin,
      inInitrd: inputs.inInitrd,
      bootUrl: inputs.bootUrl,
    });
    for (const warning of result.warnings) log.push({ level: "warning", message: `${where}: ${warning}` });
    if (result.kind === "rejected") {
      log.push({ level: "err", message: `${where}: ${result.error} Ignoring this entry.` });
      continue;
    }
    if (result.kind === "skipped") {
      log.push({ level: "notice", message: `${where}: ${result.reason}` });
      continue;
    }
    for (const note of result.notes) log.push({ level: "info", message: `${where}: ${note}` });
    const request = result.request;
    const tooLong = systemdLimitViolation(request);
    if (tooLong) {
      log.push({ level: "err", message: `${where}: '${request.local}' (${request.remote}): ${tooLong}. Ignoring this entry.` });
      continue;
    }
    const clash = claimTarget(request);
    if (clash) {
      log.push({ level: "err", message: `${where}: ${localPath(request)} is already the target of ${clash.origin.what} (${clash.remote}), ignoring this entry.` });
      continue;
    }
    requests.push(request);
  }

  if (!inputs.inInitrd) {
    for (const r of requests.filter((r) => r.root)) {
      log.push({ level: "warning", message: `${r.origin.what}: option 'root' only applies in the initrd (use rd.systemd.import=); downloading '${r.local}' without mounting it.` });
      delete r.root;
    }
  }
  keepOneRoot(requests, log);
  wireRootArgument(requests, rootArgument, inputs.inInitrd, log);
  pinVerityHashes(requests, hashArguments, log);
  settleLazy(requests, config.settings, log);
  for (const line of checkSecretSources(requests, config.settings, inputTexts(inputs))) log.push(line);
  return { requests, actions, settings: config.settings, log };
}

/** Every input file's text by its path, as the runtime reads it for `--secrets-from=`. */
function inputTexts(inputs: GeneratorInputs): Map<string, string> {
  const texts = new Map<string, string>([[inputs.cmdlinePath, inputs.cmdline]]);
  if (inputs.credential) texts.set(inputs.credential.path, inputs.credential.text);
  for (const config of inputs.configs) {
    texts.set(config.path, typeof config.content === "string" ? config.content : Buffer.from(config.content).toString("utf8"));
  }
  return texts;
}

/**
 * Sets an action from the command line; an empty value resets it. The value goes into the unit file
 * verbatim, so nothing but systemd's action names may pass: a quoted value with a newline would
 * otherwise add a unit file line of its own. A refused value leaves the setting as it was.
 */
function setAction(actions: Actions, which: keyof Actions, key: string, value: string | undefined, log: LogLine[]): void {
  if (value === undefined) {
    log.push({ level: "warning", message: `Missing argument for ${key}= kernel command line switch, ignoring.` });
  } else if (value === "") {
    delete actions[which];
  } else if (isEmergencyAction(value)) {
    actions[which] = value;
  } else {
    log.push({ level: "warning", message: `Invalid value for ${key}= kernel command line switch, ignoring: ${value} (${EMERGENCY_ACTION_RULE})` });
  }
}

/**
 * Makes a request the root file system when `root=` names it the way systemd v258 does:
 * `bind:/run/machines/NAME`, `/dev/disk/by-loop-ref/NAME.raw[-partN]`, or `gpt-auto` with the
 * blockdev image `rootdisk`. Older systemd cannot mount these; netimport wires them itself.
 * `root=tmpfs` keeps systemd's empty tmpfs root and makes the raw root image provide /usr only.
 * Runs after keepOneRoot(): at most one request is the root already.
 */
function wireRootArgument(requests: ImportRequest[], root: string | undefined, inInitrd: boolean, log: LogLine[]): void {
  if (!inInitrd || root === undefined) return;
  const explicit = requests.find((r) => r.root);
  let target: ImportRequest | undefined;
  let wiring: ImportRequest["root"];

  const loopRef = /^\/dev\/disk\/by-loop-ref\/(.+)\.raw(?:-part([1-9][0-9]*))?$/.exec(root);
  if (root.startsWith("bind:")) {
    const path = root.slice(5).replace(/\/+$/, "");
    target = requests.find((r) => r.class === "machine" && localPath(r) === path);
    wiring = { kind: "bind" };
    if (target?.type === "raw") {
      log.push({ level: "err", message: `root=${root} bind-mounts a raw image file; only tar images can be bind-mounted as root.` });
      return;
    }
  } else if (loopRef) {
    target = requests.find((r) => r.type === "raw" && r.blockdev && r.local === loopRef[1]);
    wiring = { kind: "attach", partition: loopRef[2] ? Number(loopRef[2]) : "whole" };
  } else if (root === "gpt-auto") {
    target = requests.find((r) => r.type === "raw" && r.blockdev && r.local === "rootdisk");
    wiring = { kind: "attach", partition: "root" };
  } else if (root === "tmpfs") {
    if (explicit) wireUsrOnly(explicit, log);
    return;
  } else {
    if (explicit) log.push({ level: "notice", message: `root=${root} is on the command line, but ${explicit.origin.what} makes '${explicit.local}' the root file system: netimport's sysroot.mount takes precedence.` });
    return;
  }
  if (!target) return;
  if (explicit && explicit !== target) {
    log.push({ level: "err", message: `root=${root} names '${target.local}', but ${explicit.origin.what} already makes '${explicit.local}' the root file system; keeping '${explicit.local}'.` });
    return;
  }
  target.root = wiring;
  log.push({ level: "info", message: `root=${root}: '${target.local}' from ${target.remote} becomes the root file system.` });
}

/**
 * root=tmpfs with a root image: systemd's fstab-generator mounts an empty tmpfs at /sysroot (252 and 257
 * alike: `rootfs`, type tmpfs, `rw,mode=0755`), and the image provides /usr, from its /usr partition. A
 * tar image has no partitions to take /usr from, and its tree as root would contradict root=tmpfs: it is
 * downloaded without being mounted, as any image that cannot be the root (see keepOneRoot()).
 */
function wireUsrOnly(request: ImportRequest, log: LogLine[]): void {
  if (request.type === "tar") {
    log.push({ level: "err", message: `${request.origin.what}: root=tmpfs asks for an image that provides /usr only, which only a raw image's /usr partition can; '${request.local}' is a tar image, downloading it without making it part of the root file system.` });
    delete request.root;
    return;
  }
  request.root = { kind: "usr" };
  log.push({ level: "info", message: `root=tmpfs: the root file system is an empty tmpfs, and '${request.local}' from ${request.remote} provides /usr.` });
}

/**
 * roothash=/usrhash= pin the dm-verity root hashes of the root image's root and /usr partitions. A value
 * systemd-veritysetup-generator would refuse is refused here too, and, as with systemd (whose root then
 * waits for a /dev/mapper device that never comes), the image is not mounted without the verification the
 * command line asks for: it is downloaded without being made the root file system.
 */
function pinVerityHashes(requests: ImportRequest[], given: Partial<Record<HashKey, string>>, log: LogLine[]): void {
  const root = requests.find((r) => r.root);
  if (!root?.root) return;
  const wiring = root.root;
  for (const key of ["roothash", "usrhash"] as const) {
    const value = given[key];
    if (value === undefined) continue;
    const usedBy = isDdiWiring(wiring) || (wiring.kind === "usr" && key === "usrhash");
    if (!usedBy) {
      const how = wiring.kind === "usr" ? "with root=tmpfs it provides /usr only" : wiring.kind === "bind" ? "it is a tar image" : "it is attached as one partition or the whole image, not as a disk with verity partitions";
      log.push({ level: "notice", message: `${key}= is on the command line, but netimport sets up no dm-verity for '${root.local}' from it: ${how}.` });
      continue;
    }
    const hash = rootHash(value);
    if (hash === undefined) {
      log.push({ level: "err", message: `Invalid value for ${key}= kernel command line switch: ${value} (expected ${ROOT_HASH_RULE}); downloading '${root.local}' without making it the root file system, which it would be without the verification asked for.` });
      delete root.root;
      return;
    }
    if (isDdiWiring(wiring)) wiring[key] = hash;
    else if (wiring.kind === "usr") wiring.usrhash = hash;
  }
}

/**
 * Decides, once the root wiring is final, which requests are lazy: those that say `lazy` (or, with
 * `[Lazy] Default=yes`, do not say `lazy=no`) and are a raw root image attached as a DDI, served over
 * http(s): a block device needs partitions to map and Range requests to read. Any other request that
 * asked for it is downloaded in full, with a warning saying why.
 */
function settleLazy(requests: ImportRequest[], settings: DownloadSettings, log: LogLine[]): void {
  for (const request of requests) {
    const asked = request.lazy;
    delete request.lazy;
    const byDefault = asked === undefined && settings.lazyDefault === true && isDdiWiring(request.root);
    if (asked !== true && !byDefault) continue;
    const where = request.origin.what;
    if (!isDdiWiring(request.root)) {
      log.push({ level: "warning", message: `${where}: option 'lazy' only applies to a raw image that is the root file system as a disk (rd.systemd.import=raw,root,lazy,…); downloading '${request.local}' in full.` });
      continue;
    }
    if (!/^https?:/.test(request.remote)) {
      log.push({ level: "warning", message: `${where}: option 'lazy' needs an http:// or https:// URL (it reads the image with Range requests); downloading '${request.local}' in full.` });
      continue;
    }
    request.lazy = true;
    log.push({ level: "info", message: `${where}: '${request.local}' is lazy: the root file system mounts from ${request.remote} at once and the image is copied in the background${byDefault ? " ([Lazy] Default=yes)" : ""}.` });
  }
}

/** Only one image can be the root file system: the first one named wins. */
function keepOneRoot(requests: ImportRequest[], log: LogLine[]): void {
  const roots = requests.filter((r) => r.root);
  for (const extra of roots.slice(1)) {
    log.push({ level: "err", message: `${extra.origin.what}: '${extra.local}' is marked root, but '${roots[0]!.local}' already is; downloading it without making it the root file system.` });
    delete extra.root;
  }
}
