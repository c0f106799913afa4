// Log lines of a root storage daemon: into the kernel log (/dev/kmsg), the one channel that outlives the
// initrd. Its standard output is a stream into the initrd's journald, which stops at switch-root; the
// kernel log reaches the console at once and the new journal reads it too (journald imports kmsg).
// The file stays open, so it keeps working after switch-root has deleted the initrd's /dev node.
import { closeSync, openSync, writeSync } from "node:fs";
import { logText } from "../generator/log-line.ts";

/** syslog priorities, as the kernel log takes them (`<N>` prefix). */
export type Priority = "crit" | "err" | "warning" | "notice" | "info";
const LEVELS: Record<Priority, number> = { crit: 2, err: 3, warning: 4, notice: 5, info: 6 };

/** The kernel caps one record at about 1 KiB; longer lines are cut, with an ellipsis. */
const MAX_LINE = 960;

export interface KernelLog {
  write(line: string, priority?: Priority): void;
  close(): void;
}

/**
 * Opens the kernel log for TAG's lines (`netimport lazy: …`); where there is none (tests, containers),
 * the lines go to FALLBACK.
 *
 * @example const log = openKernelLog("netimport lazy"); log.write("serving …"); log.write("gone", "err");
 */
export function openKernelLog(tag: string, fallback: (line: string) => void = (line) => process.stderr.write(`${line}\n`), path = "/dev/kmsg"): KernelLog {
  let fd: number | undefined;
  try {
    fd = openSync(path, "w");
  } catch {
    fd = undefined;
  }
  return {
    write(line, priority = "notice") {
      let text = logText(`${tag}: ${line}`);
      if (text.length > MAX_LINE) text = `${text.slice(0, MAX_LINE - 1)}…`;
      if (fd === undefined) {
        fallback(text);
        return;
      }
      try {
        writeSync(fd, `<${LEVELS[priority]}>${text}\n`);
      } catch {
        // The kernel drops lines beyond its rate limit (EINVAL/EAGAIN): a lost log line is no reason to stop serving the root.
      }
    },
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}
