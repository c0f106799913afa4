// A tool kit: copies of the few programs the lazy root's daemon runs after switch-root (dmsetup to move the
// root's device-mapper tables onto the local copy, nbd-client to let go of /dev/nbdN), every shared
// library they load and their dynamic loader, on a small tmpfs of their own, plus a procfs.
//
// Why it is built the way it is: the daemon starts in the initrd and keeps the initrd's root directory as
// its root. At switch-root systemd deletes the initrd's files, and from v254 on (systemd PR #27670) it
// first unmounts, with MNT_DETACH, every mount outside the new root: a tmpfs at /netimport-kit is
// detached too, and nothing is reachable by an absolute path any more. A detached mount lives on for
// whoever holds it, though: an open file descriptor holds one, and so does a working directory. So the
// kit is
//
//   KIT/tools/  ld.so, lib/, bin/, dev/   what a tool sees as its root (the daemon holds a descriptor on it)
//   KIT/proc/   a procfs                  the daemon's working directory once it called enter()
//
// and from the procfs the daemon reaches everything by relative paths: the tools as `PID/fd/N/…` (its own
// descriptor on KIT/tools) and the system's files as `1/root/…` (PID 1's root: the initrd's before
// switch-root, the system's after). Submounts do not help: a lazy unmount disconnects the submounts of
// what it detaches (a devtmpfs at KIT/dev would come back empty). Every tool runs as
//
//   T/ld.so --library-path T/lib T/bin/chroot T /ld.so --library-path /lib /bin/TOOL ARGS…   (T = PID/fd/N)
//
// The loader is executed directly (no PT_INTERP lookup in a root that is gone), and chroot makes KIT/tools
// the tool's root, so the tool sees absolute paths again: DM_DEV_DIR=/dev is the kit's own dev/, where
// libdevmapper makes mapper/control itself (it mknods the node when it is missing; the kit's tmpfs is not
// nodev). It runs the same way before switch-root (the spawn then gets KIT/proc as its working
// directory), so tests exercise the very route the daemon takes after it. A kit tool cannot open files
// outside the kit: attach the local copy to its loop device before switch-root; dmsetup (by device name)
// and `nbd-client -d` (netlink only) need no files.
import { execFile } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import { chmod, copyFile, mkdir, readdir, readFile, realpath, rmdir, stat, writeFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { promisify } from "node:util";
import { readElfInterpreter } from "./elf-interpreter.ts";
import { findExecutable, runTool } from "./system-tools.ts";

const execFileAsync = promisify(execFile);

/** What the tools read from /proc: libdevmapper's device numbers (see snapshotProcFiles). */
const PROC_FILES = ["devices", "misc"];

/** The helper every kit carries: it makes KIT/tools the root of the tool it starts. */
const CHROOT = "chroot";

/** How to start a kit tool from this process: execFile(file, args, { env, cwd }). */
export interface ToolCommand {
  file: string;
  args: string[];
  /** The whole environment: LC_ALL=C and DM_DEV_DIR=/dev, nothing from the initrd (no PATH). */
  env: Record<string, string>;
  /** KIT/proc, until enter() made it the working directory of this process (then absent: inherited). */
  cwd?: string;
}

export interface ToolKitOptions {
  /** Where to look for the tools (default: PATH, else systemd's default PATH). */
  path?: string;
  /** Size limit of the kit's tmpfs, in mount's size= syntax (default 64M; dmsetup, nbd-client and losetup take ~15 MB). */
  size?: string;
}

export interface ToolKit {
  /** Where the kit is mounted. */
  readonly dir: string;
  /** The programs in it (the ones asked for, and chroot). */
  readonly tools: readonly string[];
  /**
   * Makes the kit's procfs this process's working directory, which keeps the kit reachable after
   * switch-root detaches its mounts. Call it before switch-root, and change the working directory no more.
   * Once the kit is detached, process.cwd() (and path.resolve() of a relative path, fs.cp, …) throw
   * ENOENT: reach files by the paths rootPath() gives, which work relative to the working directory.
   */
  enter(): void;
  /** How to start `tool` with `args` from the kit, in a child of this process. */
  command(tool: string, args: string[]): ToolCommand;
  /** Runs `tool` from the kit; its stdout, or an Error with the first line of its stderr. */
  run(tool: string, args: string[]): Promise<string>;
  /** How the kit's tools name the device node NAME: /dev/NAME (their /dev is the kit's own, nearly empty). */
  devicePath(name: string): string;
  /**
   * The path by which this process reaches `path` (absolute) in the root of process `pid`: by default
   * PID 1's, which is the initrd's root before switch-root and the system's after it.
   */
  rootPath(path: string, pid?: number): string;
  /** Leaves the kit (back to where enter() came from), unmounts it and removes its directory. */
  remove(): Promise<void>;
}

/** One shared library a tool loads: the name it is asked for by, and the file that provides it. */
export interface LoadedLibrary {
  name: string;
  path: string;
}

const ADDRESS = String.raw`\(0x[0-9a-f]+\)`;
const RESOLVED = new RegExp(String.raw`^(\S+) => (/\S+) ${ADDRESS}$`);
const BY_PATH = new RegExp(String.raw`^(/\S+) ${ADDRESS}$`);
/** The vDSO: "linux-vdso.so.1 (0x…)" (older glibc: "linux-vdso.so.1 =>  (0x…)"); the kernel provides it. */
const VIRTUAL = new RegExp(String.raw`^[^/\s]+ (?:=>\s+)?${ADDRESS}$`);

/**
 * The libraries in glibc's `ld.so --list TOOL` output (what ldd prints), without the vDSO and the loader
 * itself (`interpreter`, however it is shown). Throws for a library that is not found, one needed by an
 * absolute path (a kit has only lib/), and any line it does not understand, rather than build a kit that
 * fails later.
 *
 * ```ts
 * parseLoaderList("\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f…)\n", "/lib64/ld-linux-x86-64.so.2", "losetup");
 * // [{ name: "libc.so.6", path: "/lib/x86_64-linux-gnu/libc.so.6" }]
 * ```
 */
export function parseLoaderList(text: string, interpreter: string, tool: string): LoadedLibrary[] {
  const libraries: LoadedLibrary[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line === "statically linked" || VIRTUAL.test(line)) continue;
    const notFound = /^(\S+) => not found$/.exec(line);
    if (notFound) throw new Error(`${tool} needs ${notFound[1]}, which is not installed`);
    const resolved = RESOLVED.exec(line);
    const name = resolved?.[1] ?? BY_PATH.exec(line)?.[1];
    if (name === undefined) throw new Error(`unexpected line in ${interpreter} --list output for ${tool}: ${JSON.stringify(line)}`);
    // The loader appears by its PT_INTERP path, alone or resolved ("/lib64/ld-… => /usr/lib64/ld-…").
    if (name === interpreter) continue;
    if (name.startsWith("/")) throw new Error(`${tool} needs ${name} by its absolute path, which a tool kit cannot provide`);
    libraries.push({ name, path: resolved![2]! });
  }
  return libraries;
}

function checkToolName(tool: string): void {
  if (!/^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$/.test(tool)) throw new Error(`'${tool}' is not a program name`);
}

async function copyInto(source: string, target: string, mode: number): Promise<void> {
  await copyFile(source, target); // follows symbolic links: the kit holds the files themselves
  await chmod(target, mode);
}

/** Copies every tool, its libraries and the loader into KIT/tools; returns the static tools. */
async function populate(tree: string, found: { tool: string; path: string }[]): Promise<Set<string>> {
  for (const sub of ["bin", "lib", "dev", "proc"]) await mkdir(join(tree, sub), { mode: 0o755 });
  const statics = new Set<string>();
  const libraries = new Map<string, string>(); // name in lib/ → the file copied there
  let loader: { interpreter: string; file: string } | undefined;
  for (const { tool, path } of found) {
    const interpreter = await readElfInterpreter(path).catch((error: Error) => {
      throw new Error(`cannot put ${tool} (${path}) in the tool kit: ${error.message}`);
    });
    await copyInto(path, join(tree, "bin", tool), 0o755);
    if (interpreter === undefined) {
      statics.add(tool); // static (or static-pie): runs on its own
      continue;
    }
    const file = await realpath(interpreter).catch(() => {
      throw new Error(`${tool} (${path}) needs the loader ${interpreter}, which is not installed`);
    });
    if (!loader) {
      loader = { interpreter, file };
      await copyInto(file, join(tree, "ld.so"), 0o755);
    } else if (loader.file !== file) {
      throw new Error(`${tool} needs the loader ${interpreter}, another than the kit's ${loader.interpreter}`);
    }
    for (const library of parseLoaderList(await runTool(interpreter, ["--list", path]), interpreter, tool)) {
      const source = await realpath(library.path);
      const had = libraries.get(library.name);
      if (had === source) continue;
      if (had) throw new Error(`two tools need ${library.name}, as ${had} and as ${source}: a flat lib/ holds one`);
      libraries.set(library.name, source);
      await copyInto(source, join(tree, "lib", library.name), 0o644);
    }
  }
  return statics;
}

/**
 * Builds a tool kit at `dir` (an absolute path whose parent exists, in the initrd's root but not under
 * /run, /dev, /proc or /sys, which switch-root carries over): mounts a tmpfs there (mode 0700, nosuid, bounded
 * size), copies `tools` (found on PATH), chroot, their libraries (flat into lib/) and their loader into
 * KIT/tools, and mounts a procfs at KIT/proc. Static tools are copied alone. When building fails half-way,
 * what was mounted and made is removed again.
 *
 * ```ts
 * const kit = await buildToolKit("/netimport-kit", ["dmsetup", "nbd-client"]);
 * kit.enter();                                              // before switch-root
 * const table = await kit.run("dmsetup", ["table"]);        // works after it too
 * await rename(kit.rootPath("/var/x.tmp"), kit.rootPath("/var/x"));
 * ```
 */
export async function buildToolKit(dir: string, tools: string[], options: ToolKitOptions = {}): Promise<ToolKit> {
  if (!isAbsolute(dir)) throw new Error(`the tool kit's directory must be an absolute path, not ${dir}`);
  const names = [...new Set([...tools, CHROOT])];
  names.forEach(checkToolName);
  // Find everything before mounting anything: a missing tool leaves nothing behind.
  const found = names.map((tool) => {
    const path = findExecutable(tool, options.path);
    if (!path) throw new Error(`${tool} is not installed (not on PATH), so it cannot go into the tool kit`);
    return { tool, path };
  });
  let made = false;
  try {
    await mkdir(dir, { mode: 0o700 });
    made = true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    if ((await readdir(dir)).length > 0) throw new Error(`${dir} exists and is not empty: not a place for a tool kit`);
  }
  try {
    await runTool("mount", ["-t", "tmpfs", "-o", `mode=0700,nosuid,size=${options.size ?? "64M"}`, "netimport-kit", dir]);
  } catch (error) {
    if (made) await rmdir(dir).catch(() => undefined);
    throw error;
  }
  const kitDevice = (await stat(dir)).dev;
  const unmount = async (): Promise<void> => {
    try {
      await runTool("umount", ["--recursive", dir]);
    } catch (error) {
      // Gone already (switch-root detached it, or umount went with the initrd): nothing of ours is left here.
      if (await stat(dir).then((s) => s.dev === kitDevice, () => false)) throw error;
    }
    if (made) await rmdir(dir).catch(() => undefined);
  };
  const tree = join(dir, "tools");
  let statics: Set<string>;
  let treeFd: number;
  try {
    await mkdir(tree, { mode: 0o755 });
    statics = await populate(tree, found);
    await mkdir(join(dir, "proc"), { mode: 0o555 });
    await runTool("mount", ["-t", "proc", "-o", "nosuid,nodev,noexec", "proc", join(dir, "proc")]);
    treeFd = openSync(tree, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (error) {
    await unmount().catch(() => undefined);
    throw error;
  }
  return makeToolKit({ dir, tools: names, statics, treeFd, unmount });
}

interface Parts {
  dir: string;
  tools: string[];
  statics: Set<string>;
  /** This process's descriptor on KIT/tools: what keeps the tools reachable. */
  treeFd: number;
  unmount: () => Promise<void>;
}

function makeToolKit({ dir, tools, statics, treeFd, unmount }: Parts): ToolKit {
  const procfs = join(dir, "proc");
  let cameFrom: string | undefined;
  let removed = false;
  /** A path relative to the kit's procfs, or absolute through it until enter() made it the working directory. */
  const viaProcfs = (relative: string) => (cameFrom === undefined ? `${procfs}/${relative}` : relative);
  const command = (tool: string, args: string[]): ToolCommand => {
    if (removed) throw new Error(`the tool kit at ${dir} was removed`);
    if (!tools.includes(tool)) throw new Error(`${tool} is not in the tool kit at ${dir} (it has ${tools.join(", ")})`);
    // Relative to the working directory (the procfs): the tools by this process's descriptor on them.
    const t = `${process.pid}/fd/${treeFd}`;
    const inside = statics.has(tool) ? [`/bin/${tool}`] : ["/ld.so", "--library-path", "/lib", `/bin/${tool}`];
    const chroot = statics.has(CHROOT) ? { file: `${t}/bin/${CHROOT}`, args: [] } : { file: `${t}/ld.so`, args: ["--library-path", `${t}/lib`, `${t}/bin/${CHROOT}`] };
    return {
      file: chroot.file,
      args: [...chroot.args, t, ...inside, ...args],
      env: { LC_ALL: "C", DM_DEV_DIR: "/dev" },
      ...(cameFrom === undefined ? { cwd: procfs } : {}),
    };
  };
  /**
   * The tools' root has no procfs of its own (a mount inside the kit would not survive switch-root), but
   * libdevmapper looks up the device-mapper and misc majors and minors in /proc/devices and /proc/misc:
   * copy them from the kit's procfs before each run (a module loaded since then adds lines).
   */
  const snapshotProcFiles = async (): Promise<void> => {
    const tree = viaProcfs(`${process.pid}/fd/${treeFd}`);
    for (const name of PROC_FILES) await writeFile(`${tree}/proc/${name}`, await readFile(viaProcfs(name)));
  };
  return {
    dir,
    tools,
    enter(): void {
      if (cameFrom !== undefined) return;
      const here = process.cwd();
      process.chdir(procfs);
      cameFrom = here;
    },
    command,
    async run(tool: string, args: string[]): Promise<string> {
      const { file, args: argv, env, cwd } = command(tool, args);
      await snapshotProcFiles();
      try {
        const { stdout } = await execFileAsync(file, argv, { env, encoding: "utf8", maxBuffer: 16 << 20, ...(cwd ? { cwd } : {}) });
        return stdout;
      } catch (error) {
        const e = error as { code?: string | number; stderr?: string; message: string };
        if (e.code === "ENOENT") throw new Error(`${tool} cannot run: the tool kit at ${dir} is gone (was it entered before switch-root?)`);
        const detail = (e.stderr ?? "").trim().split("\n")[0] || e.message;
        throw new Error(`${tool} ${args.join(" ")} failed: ${detail}`);
      }
    },
    devicePath: (name: string) => `/dev/${name}`,
    rootPath(path: string, pid = 1): string {
      if (!isAbsolute(path)) throw new Error(`rootPath() takes an absolute path, not ${path}`);
      return viaProcfs(`${pid}/root${path}`);
    },
    async remove(): Promise<void> {
      if (cameFrom !== undefined) {
        try {
          process.chdir(cameFrom);
        } catch {
          process.chdir("/"); // where enter() came from went away with the initrd
        }
        cameFrom = undefined;
      }
      if (!removed) closeSync(treeFd); // once: the number may belong to another file afterwards
      removed = true;
      await unmount();
    },
  };
}
