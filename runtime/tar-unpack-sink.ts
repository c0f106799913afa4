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
import { spawnSync } from "node:child_process";
import { readdir } from "node:fs/promises";
import { Writable } from "node:stream";
import { startHelper, type Helper, type HelperExit } from "./helper-process.ts";
import { findExecutable } from "./system-tools.ts";
import { TarGuard } from "./tar-guard.ts";

export interface GnuTar {
  path: string;
  /** Whether it was built with ACL support (--acls). */
  acls: boolean;
}

/**
 * GNU tar, with whether it supports --acls, or an Error saying what to add to the initrd. The pull
 * asks once, before it downloads, and hands the answer to the sink.
 */
export function requireGnuTar(): GnuTar {
  const path = findExecutable("tar");
  if (path) {
    // What `tar --help` lists is what this tar can do; only GNU tar has --xattrs.
    const help = spawnSync(path, ["--help"], { encoding: "utf8" }).stdout ?? "";
    if (/GNU/.test(help) || /--xattrs/.test(help)) return { path, acls: /--acls/.test(help) };
  }
  throw new Error(`tar images need GNU tar, and ${path ? `${path} is not GNU tar` : "there is none on PATH"} ` +
    "(busybox tar lacks numeric owners, xattrs and ACLs): add GNU tar to the initrd");
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
export function createTarUnpackSink(dir: string, gnu: GnuTar): Writable {
  const guard = new TarGuard();
  let tar: Helper | undefined;
  let exited: Promise<HelperExit> = Promise.resolve({ code: 0, signal: null });
  let finishing = false;

  const start = async () => {
    const entries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
      throw new Error(error.code === "ENOENT" ? `${dir} does not exist` : `cannot read ${dir}: ${error.message}`);
    });
    if (entries.length) throw new Error(`${dir} is not empty: refusing to unpack into it`);
    const args = ["--extract", "--file=-", `--directory=${dir}`, "--numeric-owner", "--same-owner", "--same-permissions",
      "--xattrs", "--xattrs-include=*", ...(gnu.acls ? ["--acls"] : []), "--no-overwrite-dir"];
    // LC_ALL=C: GNU tar converts pax names from UTF-8 to the locale's charset (src/utf8.c); in the C locale
    // that fails for any non-ASCII name and the bytes stay as they are: the very bytes the guard checked.
    tar = startHelper(gnu.path, args, { stdout: "ignore", argv0: "tar", env: { ...process.env, LC_ALL: "C" } });
    exited = tar.exited;
    // tar dying on its own (killed, out of space) while the sink waits for more input must end the sink
    // now, not at the next write, which may never come.
    void exited.then((exit) => {
      if (!finishing && !guard.ended && !sink.destroyed) sink.destroy(failure(exit) ?? new Error("tar exited before the end of the archive"));
    });
  };

  /** Why tar failed, from its exit status and its last messages. */
  const failure = (exit: HelperExit): Error | undefined => {
    if (exit.error) return new Error(`cannot run GNU tar: ${exit.error.message}`);
    if (exit.code === 0) return undefined;
    const lines = tar!.stderr().trim().split("\n").filter((line) => line && !/Exiting with failure status/.test(line));
    return new Error(`tar failed (${exit.code ?? exit.signal}): ${lines.slice(0, 3).join("; ") || "no message"}`);
  };

  /** tar stopped reading before the archive's end: its own error says why. */
  const gaveUp = async (): Promise<never> => {
    throw failure(await exited) ?? new Error("tar exited before the end of the archive");
  };

  /** Passes checked bytes to tar, waiting while its pipe is full. */
  const feed = async (bytes: Buffer): Promise<void> => {
    if (!(await tar!.feed(bytes))) await gaveUp();
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
        if (guard.ended) tar!.endInput(Buffer.alloc(512));
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
      Promise.resolve(tar?.stop()).then(() => callback(error), () => callback(error));
    },
  });
  return sink;
}
