// The fast path for a raw image compressed with zstd or xz when the system's binary is installed: the
// decoder's standard output *is* the image file, so the decoded gigabytes never pass through Node
// (1 GiB .raw.zst: 0.5 s for `zstd -d` into a file, against ~1.3 s through a pipe and back out).
// Both binaries write sparse files themselves: `zstd --sparse` leaves all-zero 32 KiB segments as
// holes, xz does so on its own when its output is a regular file.
import type { FileHandle } from "node:fs/promises";
import { Writable } from "node:stream";
import { openImageFile } from "./destination.ts";
import { startHelper, type Helper } from "./helper-process.ts";
import { describeExit, type ProcessDecoder } from "./native-decoder.ts";
import { explainWriteError } from "./ram-space.ts";

const NO_SPACE = /no space left on device|disk quota exceeded/i;

/**
 * A Writable of compressed bytes that `decoder` decodes into a new file at `path` (new, or the empty
 * temporary the pull created; never through a symlink).
 *
 * ```ts
 * await pipeline(body, createNativeFileDecoder({ command: "/usr/bin/zstd", args: ["-dcq", "--sparse"], format: "zstd" }, tmp));
 * ```
 * A decoder failure ends the stream with "<format> stream is corrupt: …" or "… is truncated: …"; a
 * full file system with explainWriteError's "no space left on … : the image does not fit".
 */
export function createNativeFileDecoder(decoder: ProcessDecoder, path: string): Writable {
  let file: FileHandle | undefined;
  let helper: Helper | undefined;

  /** Why the decoder stopped: its own words, unless they say the file system is full. */
  const outcome = async (): Promise<Error | undefined> => {
    const status = await helper!.exited;
    const stderr = helper!.stderr();
    if (status.code !== 0 && NO_SPACE.test(stderr)) {
      // The tool's message is all there is to tell a full file system from a bad stream.
      const cause = Object.assign(new Error(stderr.trim().split("\n")[0]), { code: "ENOSPC" });
      return explainWriteError(cause, path);
    }
    return describeExit(decoder.format, decoder.command, status, stderr);
  };

  return new Writable({
    highWaterMark: 1 << 20,
    construct(callback) {
      openImageFile(path).then((handle) => {
        file = handle;
        helper = startHelper(decoder.command, decoder.args, { stdout: handle.fd });
        callback();
      }, (error) => callback(explainWriteError(error, path)));
    },
    write(chunk: Buffer, _encoding, callback) {
      helper!.feed(chunk).then(async (reading) => {
        if (!reading) throw (await outcome()) ?? new Error(`${decoder.format} decoder stopped reading`);
      }).then(() => callback(), callback);
    },
    final(callback) {
      helper!.endInput();
      outcome().then(async (error) => {
        if (error) throw error;
        await file!.close();
        file = undefined;
      }).then(() => callback(), (error: Error) => callback(error));
    },
    destroy(error, callback) {
      const handle = file;
      file = undefined;
      // The file is closed only once the decoder, which writes it, is gone.
      Promise.resolve(helper?.stop()).then(() => handle?.close()).then(() => callback(error), () => callback(error));
    },
  });
}
