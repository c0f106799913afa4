// The generator's I/O edge on the way in: command line, initrd detection, credential, config files,
// systemd's own import generator, efivarfs. Test hooks: SYSTEMD_PROC_CMDLINE, SYSTEMD_IN_INITRD,
// NETIMPORT_EFIVARFS, NETIMPORT_ROOT, CREDENTIALS_DIRECTORY.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ConfigText } from "./config-file.ts";
import { hasControlCharacter } from "./control-characters.ts";
import { discoverBootUrl, efivarfsReader, DEFAULT_EFIVARFS, type BootUrl } from "./efi-boot-url.ts";
import type { LogLine } from "./log-line.ts";
import { parseBoolean } from "./pull-expression.ts";
import type { GeneratorInputs } from "./plan.ts";

type Env = Record<string, string | undefined>;

function rootPrefix(env: Env): string {
  return env.NETIMPORT_ROOT ?? "";
}

function readCmdline(env: Env): { text: string; path: string } {
  if (env.SYSTEMD_PROC_CMDLINE !== undefined) return { text: env.SYSTEMD_PROC_CMDLINE, path: "/proc/cmdline" };
  try {
    return { text: readFileSync("/proc/cmdline", "utf8"), path: "/proc/cmdline" };
  } catch {
    return { text: "", path: "/proc/cmdline" };
  }
}

/** systemd's in_initrd(): SYSTEMD_IN_INITRD overrides, else /etc/initrd-release exists. */
function detectInitrd(env: Env): boolean {
  const override = env.SYSTEMD_IN_INITRD !== undefined ? parseBoolean(env.SYSTEMD_IN_INITRD) : undefined;
  if (override !== undefined) return override;
  return existsSync(`${rootPrefix(env)}/etc/initrd-release`);
}

/** The `import.pull` credential: $CREDENTIALS_DIRECTORY, else the system credentials folder. */
function readCredential(env: Env, log: LogLine[]): { path: string; text: string } | undefined {
  const dirs = env.CREDENTIALS_DIRECTORY !== undefined
    ? [env.CREDENTIALS_DIRECTORY]
    : [`${rootPrefix(env)}/run/credentials/@system`];
  for (const dir of dirs) {
    const path = join(dir, "import.pull");
    try {
      return { path, text: readFileSync(path, "utf8") };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        log.push({ level: "err", message: `Cannot read credential ${path}: ${(error as Error).message}` });
      }
    }
  }
  const encrypted = env.ENCRYPTED_CREDENTIALS_DIRECTORY;
  if (encrypted && existsSync(join(encrypted, "import.pull"))) {
    log.push({ level: "warning", message: `The import.pull credential is encrypted; netimport cannot decrypt credentials, ignoring it.` });
  }
  return undefined;
}

const CONFIG_DIRS = ["/etc/netimport", "/run/netimport", "/usr/lib/netimport"];

/**
 * systemd-style config lookup: the first `netimport.conf` of /etc, /run, /usr/lib, then every
 * `netimport.conf.d/*.conf` drop-in, where a name in an earlier folder masks the same name in a
 * later one, applied sorted by file name.
 */
function readConfigFiles(env: Env, log: LogLine[]): ConfigText[] {
  const prefix = rootPrefix(env);
  const files: ConfigText[] = [];
  const read = (path: string): void => {
    try {
      // Bytes, not text: the parser checks each line's UTF-8 as systemd does.
      files.push({ path, content: readFileSync(`${prefix}${path}`) });
    } catch (error) {
      log.push({ level: "err", message: `Cannot read ${path}: ${(error as Error).message}` });
    }
  };
  const main = CONFIG_DIRS.map((dir) => `${dir}/netimport.conf`).find((p) => existsSync(`${prefix}${p}`));
  if (main) read(main);
  const dropins = new Map<string, string>();
  for (const dir of CONFIG_DIRS) {
    let names: string[] = [];
    try {
      names = readdirSync(`${prefix}${dir}/netimport.conf.d`);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!name.endsWith(".conf") || dropins.has(name)) continue;
      // The path is written into units (SourcePath=, comments): a newline in it would end the line.
      if (hasControlCharacter(name)) {
        log.push({ level: "warning", message: `Ignoring drop-in ${dir}/netimport.conf.d/${name}: its name has control characters.` });
        continue;
      }
      dropins.set(name, `${dir}/netimport.conf.d/${name}`);
    }
  }
  for (const name of [...dropins.keys()].sort()) read(dropins.get(name)!);
  return files;
}

const SYSTEMD_GENERATOR_DIRS = ["/usr/lib/systemd/system-generators", "/lib/systemd/system-generators", "/etc/systemd/system-generators", "/run/systemd/system-generators", "/usr/local/lib/systemd/system-generators"];

function systemdImportGeneratorInstalled(env: Env): boolean {
  const prefix = rootPrefix(env);
  return SYSTEMD_GENERATOR_DIRS.some((dir) => existsSync(`${prefix}${dir}/systemd-import-generator`));
}

export function bootUrlFromEnv(env: Env): BootUrl | undefined {
  return discoverBootUrl(efivarfsReader(env.NETIMPORT_EFIVARFS ?? DEFAULT_EFIVARFS));
}

/** Everything the generator reads, gathered in one place; the EFI variables only on demand. */
export function readGeneratorInputs(env: Env, log: LogLine[]): GeneratorInputs {
  const cmdline = readCmdline(env);
  let bootUrl: { value: BootUrl | undefined } | undefined;
  const credential = readCredential(env, log);
  return {
    cmdline: cmdline.text,
    cmdlinePath: cmdline.path,
    inInitrd: detectInitrd(env),
    ...(credential ? { credential } : {}),
    configs: readConfigFiles(env, log),
    systemdImportGeneratorInstalled: systemdImportGeneratorInstalled(env),
    bootUrl: () => (bootUrl ??= { value: bootUrlFromEnv(env) }).value,
  };
}
