// The tar image sink: unpacks into an existing empty folder with ownership (numeric), modes, symlinks,
// hard links, device nodes, xattrs and ACLs, using GNU tar when it is installed (stdin piped, stderr kept
// for the error message). Every header first passes TarGuard, which refuses entries escaping the folder.
//
// What GNU tar 1.34 does by itself (checked): strips a leading "/" and skips members containing ".." (with
// exit status 2 at the end), and creates "dangerous" symlinks (absolute, or with "..") as placeholders
// until the end, so writing through them fails with "Not a directory". The guard makes all three a clear,
// immediate error instead.
//
// Without GNU tar (busybox tar lacks xattrs and numeric owners), node-tar 7 unpacks. Its limits: no device
// nodes or FIFOs (skipped), no xattrs, no ACLs, no GNU sparse files (written expanded, if at all), and
// SELinux labels are not restored. Ownership and modes are kept (we run as root).
import { spawn, spawnSync } from "node:child_process";
import { readdir } from "node:fs/promises";
import { Writable } from "node:stream";
import { extract as nodeTarExtract } from "tar";
import { findExecutable } from "./native-decoder.ts";
import { TarGuard } from "./tar-guard.ts";

export interface TarUnpackOptions {
  /** "auto" (default): GNU tar when on PATH, else node-tar. */
  implementation?: "auto" | "gnu" | "js";
  /** Called once with the extractor chosen. */
  onExtractor?: (extractor: "gnu-tar" | "node-tar") => void;
}

let gnuTarCache: { path: string; acls: boolean } | null | undefined;

/** GNU tar's path and whether it supports --acls, or null when `tar` is missing or not GNU tar. */
export function findGnuTar(): { path: string; acls: boolean } | null {
  if (gnuTarCache !== undefined) return gnuTarCache;
  const path = findExecutable("tar");
  gnuTarCache = null;
  if (path) {
    const help = spawnSync(path, ["--help"], { encoding: "utf8" });
    if (/GNU/.test(help.stdout ?? "") || /--xattrs/.test(help.stdout ?? "")) {
      gnuTarCache = { path, acls: /--acls/.test(help.stdout) };
    }
  }
  return gnuTarCache;
}

/**
 * A Writable that unpacks a tar stream into `dir` (which must exist and be empty). It finishes only once
 * the extractor has exited successfully.
 *
 * ```ts
 * await pipeline(body, createDecoder(), createTarUnpackSink("/run/machines/.image.partial"));
 * ```
 */
export function createTarUnpackSink(dir: string, options: TarUnpackOptions = {}): Writable {
  const guard = new TarGuard();
  const gnu = options.implementation === "js" ? null : findGnuTar();
  if (options.implementation === "gnu" && !gnu) throw new Error("GNU tar is not installed");
  options.onExtractor?.(gnu ? "gnu-tar" : "node-tar");
  let target: Writable;
  let done: Promise<void>;
  let stderr = "";
  let kill: () => void;

  const start = async () => {
    const entries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
      throw new Error(error.code === "ENOENT" ? `${dir} does not exist` : `cannot read ${dir}: ${error.message}`);
    });
    if (entries.length) throw new Error(`${dir} is not empty: refusing to unpack into it`);
    if (gnu) {
      const args = ["--extract", "--file=-", `--directory=${dir}`, "--numeric-owner", "--same-owner", "--same-permissions",
        "--xattrs", "--xattrs-include=*", ...(gnu.acls ? ["--acls"] : []), "--no-overwrite-dir"];
      const child = spawn(gnu.path, args, { stdio: ["pipe", "ignore", "pipe"] });
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (text: string) => { stderr = (stderr + text).slice(-8000); });
      child.stdin.on("error", () => { /* EPIPE: the exit status says why */ });
      target = child.stdin;
      done = new Promise((resolve, reject) => {
        child.on("error", (error) => reject(new Error(`cannot run ${gnu.path}: ${error.message}`)));
        child.on("close", (code, signal) => {
          if (code === 0) return resolve();
          const lines = stderr.trim().split("\n").filter((line) => !/Exiting with failure status/.test(line));
          reject(new Error(`tar failed (${code ?? signal}): ${lines.slice(0, 3).join("; ") || "no message"}`));
        });
      });
      kill = () => { if (child.exitCode === null) child.kill("SIGKILL"); };
    } else {
      // strict: false so that unsupported entries (devices, FIFOs) are skipped with a warning; the
      // warnings that mean damage fail the unpack below.
      let failure: Error | undefined;
      const unpack = nodeTarExtract({
        // preservePaths keeps absolute symlink targets (/etc/mtab -> /proc/self/mounts) as they are; the
        // escapes it would otherwise block (absolute and ".." names, writing through symlinks) TarGuard refuses.
        cwd: dir, strict: false, preserveOwner: true, chmod: true, unlink: false, preservePaths: true,
        onwarn: (code: string, message: string | Error) => {
          if (code === "TAR_ENTRY_UNSUPPORTED" || code === "TAR_ENTRY_INFO") return;
          failure ??= new Error(`tar failed: ${code}: ${message instanceof Error ? message.message : message}`);
        },
      });
      target = unpack as unknown as Writable;
      kill = () => unpack.abort(new Error("unpacking aborted"));
      done = new Promise((resolve, reject) => {
        unpack.on("error", (error: Error) => reject(new Error(`tar failed: ${error.message}`)));
        unpack.on("end", () => (failure ? reject(failure) : resolve()));
      });
    }
  };
  kill = () => { /* nothing started yet */ };

  return new Writable({
    highWaterMark: 1024 * 1024,
    construct(callback) {
      start().then(() => {
        done.catch(() => { /* reported by final(); after a destroy nobody waits for it */ });
        callback();
      }, callback);
    },
    write(chunk: Buffer, _encoding, callback) {
      // A refused entry must never reach tar, nor anything after it (the guard stays failed).
      try {
        guard.push(chunk);
      } catch (error) {
        kill();
        return callback(error as Error);
      }
      // Fail fast when tar has already died, rather than writing into a closed pipe.
      if (target.destroyed) return done.then(() => callback(new Error("tar exited early")), callback);
      if (target.write(chunk)) return callback();
      let called = false;
      const onDrain = () => {
        if (called) return;
        called = true;
        target.off("drain", onDrain);
        target.off("close", onDrain);
        callback();
      };
      target.on("drain", onDrain);
      target.on("close", onDrain);
    },
    final(callback) {
      target.end();
      done.then(() => callback(), callback);
    },
    destroy(error, callback) {
      if (error) kill();
      callback(error);
    },
  });
}
