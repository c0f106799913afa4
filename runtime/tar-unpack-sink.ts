// The tar image sink: GNU tar unpacks into an existing empty folder with ownership (numeric), modes,
// symlinks, hard links, device nodes, xattrs (file capabilities among them) and ACLs; stdin piped, stderr
// kept for the error message. Every header first passes TarGuard, which refuses entries escaping the folder.
//
// Only GNU tar: busybox tar lacks numeric owners, xattrs and ACLs, and a JavaScript extractor would need
// its own defences against every trick tar archives allow. The pull calls requireGnuTar() before it
// downloads, so a missing GNU tar fails at once with a clear message.
//
// What GNU tar 1.34 does by itself (src/extract.c): it strips a leading "/" and skips members containing
// ".." (exit status 2 at the end), and creates "dangerous" symlinks (absolute, or with "..") as placeholder
// files until the end, so writing through them fails with "Not a directory". The guard makes these a
// clear, immediate error instead, and is a second line should GNU tar's own ever fail.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readdir } from "node:fs/promises";
import { Writable } from "node:stream";
import { findExecutable } from "./native-decoder.ts";
import { TarGuard } from "./tar-guard.ts";

export interface GnuTar {
  path: string;
  /** Whether it was built with ACL support (--acls). */
  acls: boolean;
}

let gnuTarCache: GnuTar | null | undefined;

/** GNU tar's path and whether it supports --acls, or null when `tar` is missing or not GNU tar. */
export function findGnuTar(): GnuTar | null {
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

/** GNU tar, or an Error saying what to add to the initrd. Call it before downloading a tar image. */
export function requireGnuTar(): GnuTar {
  const gnu = findGnuTar();
  if (gnu) return gnu;
  const other = findExecutable("tar");
  throw new Error(`tar images need GNU tar, and ${other ? `${other} is not GNU tar` : "there is none on PATH"} ` +
    "(busybox tar lacks numeric owners, xattrs and ACLs): add GNU tar to the initrd");
}

/** The end of GNU tar's run. */
interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/**
 * A Writable that unpacks a tar stream into `dir` (which must exist and be empty). It finishes only once
 * tar has exited successfully; when it is destroyed (an error, an abort), it kills tar and completes its
 * destruction only after tar has exited, so the caller may remove the folder right away.
 *
 * ```ts
 * requireGnuTar(); // before the download
 * await pipeline(body, createDecoder(), createTarUnpackSink("/run/machines/.image.partial"));
 * ```
 */
export function createTarUnpackSink(dir: string): Writable {
  const guard = new TarGuard();
  let child: ChildProcess | undefined;
  let exited: Promise<Exit> = Promise.resolve({ code: 0, signal: null });
  let stderr = "";
  let finishing = false;

  const start = async () => {
    const gnu = requireGnuTar();
    const entries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
      throw new Error(error.code === "ENOENT" ? `${dir} does not exist` : `cannot read ${dir}: ${error.message}`);
    });
    if (entries.length) throw new Error(`${dir} is not empty: refusing to unpack into it`);
    const args = ["--extract", "--file=-", `--directory=${dir}`, "--numeric-owner", "--same-owner", "--same-permissions",
      "--xattrs", "--xattrs-include=*", ...(gnu.acls ? ["--acls"] : []), "--no-overwrite-dir"];
    // LC_ALL=C: GNU tar converts pax names from UTF-8 to the locale's charset (src/utf8.c); in the C locale
    // that fails for any non-ASCII name and the bytes stay as they are: the very bytes the guard checked.
    const tar = spawn(gnu.path, args, { argv0: "tar", stdio: ["pipe", "ignore", "pipe"], env: { ...process.env, LC_ALL: "C" } });
    child = tar;
    exited = new Promise((resolve) => {
      tar.once("error", (error) => { if (tar.pid === undefined) resolve({ code: null, signal: null, error }); });
      tar.once("close", (code, signal) => resolve({ code, signal }));
    });
    tar.stderr!.setEncoding("utf8");
    tar.stderr!.on("data", (text: string) => { stderr = (stderr + text).slice(-8000); });
    tar.stdin!.on("error", () => { /* EPIPE: the exit status says why */ });
    // tar dying on its own (killed, out of space) while the sink waits for more input must end the sink
    // now, not at the next write, which may never come.
    void exited.then((exit) => {
      if (!finishing && !guard.ended && !sink.destroyed) sink.destroy(failure(exit) ?? new Error("tar exited before the end of the archive"));
    });
  };

  /** Why tar failed, from its exit status and its last messages. */
  const failure = (exit: Exit): Error | undefined => {
    if (exit.error) return new Error(`cannot run GNU tar: ${exit.error.message}`);
    if (exit.code === 0) return undefined;
    const lines = stderr.trim().split("\n").filter((line) => line && !/Exiting with failure status/.test(line));
    return new Error(`tar failed (${exit.code ?? exit.signal}): ${lines.slice(0, 3).join("; ") || "no message"}`);
  };

  /** tar stopped reading before the archive's end: its own error says why. */
  const gaveUp = async (): Promise<never> => {
    throw failure(await exited) ?? new Error("tar exited before the end of the archive");
  };

  /** Passes checked bytes to tar, waiting while its pipe is full. */
  const feed = (bytes: Buffer): Promise<void> => {
    const stdin = child!.stdin!;
    if (stdin.destroyed || stdin.writableEnded) return bytes.length ? gaveUp() : Promise.resolve();
    if (!bytes.length || stdin.write(bytes)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onDrain = () => {
        stdin.off("drain", onDrain);
        stdin.off("close", onDrain);
        if (stdin.destroyed) gaveUp().catch(reject);
        else resolve();
      };
      stdin.on("drain", onDrain);
      stdin.on("close", onDrain);
    });
  };

  /** Kills tar if it still runs, and resolves once it has exited. */
  const stop = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  };

  const sink = new Writable({
    highWaterMark: 1024 * 1024,
    construct(callback) {
      start().then(() => callback(), callback);
    },
    write(chunk: Buffer, _encoding, callback) {
      if (guard.ended) return callback(); // after the end-of-archive block: padding, never read by tar
      let archive: number;
      try {
        archive = guard.push(chunk);
      } catch (error) {
        // A refused entry never reaches tar, nor does anything after it; destroy() stops tar.
        return callback(error as Error);
      }
      feed(chunk.subarray(0, archive)).then(() => {
        // GNU tar stops at the first zero block; a second one spares it the "lone zero block" warning.
        if (guard.ended) child!.stdin!.end(Buffer.alloc(512));
        callback();
      }, callback);
    },
    final(callback) {
      finishing = true;
      const truncated = guard.truncation();
      if (truncated) return callback(new Error(`tar stream is truncated: ${truncated}`));
      exited.then((exit) => callback(failure(exit)), callback);
    },
    destroy(error, callback) {
      // Whatever stopping tar says, the error that destroyed the sink is the one to report.
      stop().then(() => callback(error), () => callback(error));
    },
  });
  return sink;
}
