// The fast path for a raw image compressed with zstd or xz when the system's binary is installed: the
// decoder's standard output *is* the image file, so the decoded gigabytes never pass through Node
// (1 GiB .raw.zst: 0.5 s for `zstd -d` into a file, against ~1.3 s through a pipe and back out).
// Both binaries write sparse files themselves: `zstd --sparse` leaves all-zero 32 KiB segments as
// holes, xz does so on its own when its output is a regular file.
import { spawn, type ChildProcess } from "node:child_process";
import type { FileHandle } from "node:fs/promises";
import { Writable } from "node:stream";
import { describeExit, type ExitStatus } from "./native-decoder.ts";
import { openImageFile } from "./destination.ts";
import { explainWriteError } from "./ram-space.ts";

const NO_SPACE = /no space left on device|disk quota exceeded/i;

export interface NativeFileDecoderOptions {
  /** Absolute path of the decoder binary and its arguments (decode, to stdout). */
  command: string;
  args: readonly string[];
  /** "zstd" or "xz", for messages. */
  format: string;
  /** The file to write: new, or the empty temporary the pull created; never through a symlink. */
  path: string;
  mode?: number;
}

/**
 * A Writable of compressed bytes that `command` decodes into a new file at `path`.
 *
 * ```ts
 * await pipeline(body, createNativeFileDecoder({ command: "/usr/bin/zstd", args: ["-dcq", "--sparse"], format: "zstd", path: tmp }));
 * ```
 * A decoder failure ends the stream with "<format> stream is corrupt: …" or "… is truncated: …"; a
 * full file system with explainWriteError's "no space left on … : the image does not fit".
 */
export function createNativeFileDecoder(options: NativeFileDecoderOptions): Writable {
  let file: FileHandle | undefined;
  let child: ChildProcess | undefined;
  let exited: Promise<ExitStatus> | undefined;
  let stderr = "";

  const outcome = async (): Promise<Error | undefined> => {
    const status = await exited!;
    if (status.code !== 0 && NO_SPACE.test(stderr)) {
      const cause = Object.assign(new Error(stderr.trim().split("\n")[0]), { code: "ENOSPC" });
      return explainWriteError(cause, options.path);
    }
    return describeExit(options.format, options.command, status, stderr);
  };

  return new Writable({
    highWaterMark: 1 << 20,
    construct(callback) {
      openImageFile(options.path, options.mode).then((handle) => {
        file = handle;
        const spawned = spawn(options.command, options.args, { stdio: ["pipe", handle.fd, "pipe"] });
        child = spawned;
        spawned.stderr!.setEncoding("utf8");
        spawned.stderr!.on("data", (text: string) => { stderr = (stderr + text).slice(-4000); });
        exited = new Promise((resolve) => {
          spawned.on("error", (error) => resolve({ code: null, signal: null, error }));
          spawned.on("close", (code, signal) => resolve({ code, signal }));
        });
        // A decoder that quits early closes its stdin; its exit status says why.
        spawned.stdin!.on("error", () => {});
        callback();
      }, (error) => callback(explainWriteError(error, options.path)));
    },
    write(chunk: Buffer, _encoding, callback) {
      const stdin = child!.stdin!;
      if (stdin.destroyed) return void outcome().then((error) => callback(error ?? new Error(`${options.format} decoder stopped reading`)));
      if (stdin.write(chunk)) return callback();
      const resume = () => { stdin.off("drain", resume); stdin.off("close", resume); callback(); };
      stdin.on("drain", resume);
      stdin.on("close", resume); // then the next write or final() reports the exit status
    },
    final(callback) {
      child!.stdin!.end();
      outcome().then(async (error) => {
        if (error) throw error;
        await file!.close();
        file = undefined;
      }).then(() => callback(), (error: Error) => callback(error));
    },
    destroy(error, callback) {
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      const handle = file;
      file = undefined;
      const closed = (exited ?? Promise.resolve()).then(() => handle?.close());
      closed.then(() => callback(error), () => callback(error));
    },
  });
}
