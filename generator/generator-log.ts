// Logging like a systemd generator: to stderr when it leads somewhere, else to /dev/kmsg with a
// priority prefix so the lines land in the kernel log and later the journal. Every line passes
// through logText() on its way out: the messages quote what the generator read, and that may hold
// control characters and credentials.
import { fstatSync, openSync, writeSync } from "node:fs";
import { LOG_PRIORITY, logText, type LogLine } from "./log-line.ts";

const NULL_DEVICE = { major: 1, minor: 3 };
const KMSG_DEVICE = { major: 1, minor: 11 };

function deviceIs(rdev: number, device: { major: number; minor: number }): boolean {
  // Linux dev_t encoding as glibc's gnu_dev_major/minor decode it.
  const major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~0xfff);
  const minor = (rdev & 0xff) | ((rdev >> 12) & ~0xff);
  return major === device.major && minor === device.minor;
}

export type LogSink = (line: LogLine) => void;

/** Chooses where log lines go: stderr, unless it is /dev/null or closed; kmsg gets `<N>tag[pid]: ` lines. */
export function openGeneratorLog(tag = "netimport-generator"): LogSink {
  let fd = 2;
  let kmsg = false;
  try {
    const st = fstatSync(2);
    if (st.isCharacterDevice() && deviceIs(st.rdev, NULL_DEVICE)) throw new Error("stderr is /dev/null");
    kmsg = st.isCharacterDevice() && deviceIs(st.rdev, KMSG_DEVICE);
  } catch {
    try {
      fd = openSync("/dev/kmsg", "w");
      kmsg = true;
    } catch {
      return () => {};
    }
  }
  return (line) => {
    const message = logText(line.message);
    const text = kmsg ? `<${LOG_PRIORITY[line.level]}>${tag}[${process.pid}]: ${message}\n` : `${tag}: ${message}\n`;
    try {
      writeSync(fd, text);
    } catch {
      // Nowhere left to report to; the units are what matters.
    }
  };
}
