// The lazy image's server, a root storage daemon. In order:
//   argv[0] "@netimport-lazy" → the expected whole-image hash (verify=, before anything is served) →
//   the range reader (size, validator) → the local copy's hidden temporary next to DEST (room made as a
//   pull makes it) → the tool kit (dmsetup, nbd-client, chroot, their libraries and the loader on a
//   tmpfs of the initrd's root, and a procfs: tool-kit.ts) → a loop device over the copy → the NBD
//   server on a Unix socket → nbd-client connects /dev/nbdN → link, out of the unit's control group,
//   PID file, into the kit's procfs → READY.
//   Then the copy; when it is complete: the whole-image hash (when one was asked for) → every
//   device-mapper table on /dev/nbdN retargeted to the loop device → /dev/nbdN disconnected → the copy
//   renamed to DEST when verified → exit.
// After switch-root this process lives in the initrd's emptied root, whose other mounts systemd has
// detached: it reads and writes only through file descriptors it holds, runs tools from the kit, and
// reaches the system's files as 1/root/… from the kit's procfs, its working directory (PID 1's root
// is the initrd's before switch-root and the system's after).
import { mkdir, open, rename, rm, stat, writeFile, type FileHandle } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { redactUrl } from "../generator/redact.ts";
import { deviceNumberOf, formatDeviceNumber, type DeviceNumber } from "./device-number.ts";
import { inspectDestination, temporaryPath } from "./destination.ts";
import { retargetDevices } from "./dm-retarget.ts";
import { formatBytes } from "./format-bytes.ts";
import { createHttpClient } from "./http-client.ts";
import { fetchSmallFile, type TransferOptions } from "./http-source.ts";
import { openKernelLog, type KernelLog } from "./kernel-log.ts";
import { tellStarter, type LazyOptions } from "./lazy-command.ts";
import { createLazyImage, type LazyImage } from "./lazy-image.ts";
import { linkAtomically } from "./loop-attach.ts";
import { runTool } from "./system-tools.ts";
import { connectNbd, disconnectNbd } from "./nbd-device.ts";
import { createNbdServer, type NbdServer } from "./nbd-server.ts";
import type { PullOptions } from "./pull.ts";
import { ensureSpace } from "./ram-space.ts";
import { openRangeReader, type RangeReader } from "./range-reader.ts";
import { buildToolKit, type ToolKit } from "./tool-kit.ts";
import { checkCopy } from "./copy-check.ts";
import { expectImageHash, type Expectation } from "./verify.ts";
import { setXattrs } from "./xattrs.ts";

/**
 * Where the kit lives: in the initrd's root, outside what switch-root moves (/dev, /proc, /sys, /run).
 * NETIMPORT_LAZY_KIT_DIR moves it (tests on a host whose / is not to be touched).
 */
const KIT_DIR = process.env.NETIMPORT_LAZY_KIT_DIR || "/netimport-lazy-kit";
const KIT_TOOLS = ["dmsetup", "nbd-client"];
/** How often a progress line is logged while the copy runs. */
const PROGRESS_EVERY_MS = 60_000;

/** What the server made, undone in reverse when starting fails. */
type Undo = (() => Promise<unknown>)[];

/**
 * Serves the image at `options.pull.url` lazily (see the top of this file); resolves to the exit code.
 * Runs in the process lazy-command.ts started, which nothing but its own signals ends.
 */
export async function serveLazily(options: LazyOptions): Promise<number> {
  // systemd leaves processes whose argv[0] starts with '@' alone at switch-root and shutdown.
  process.title = `@netimport-lazy ${basename(options.pull.dest)}`;
  const log = openKernelLog("netimport lazy");
  // The root file system reads through this process: a bug must cost a log line, not the root.
  process.on("uncaughtException", (error) => log.write(`internal error, serving on: ${error.stack ?? error.message}`, "crit"));
  process.on("unhandledRejection", (reason) => log.write(`internal error, serving on: ${reason instanceof Error ? reason.stack ?? reason.message : String(reason)}`, "crit"));
  const undo: Undo = [];
  let started: Started;
  try {
    started = await start(options, log, undo);
  } catch (error) {
    for (const step of undo.reverse()) await step().catch(() => undefined);
    const reason = oneLine(error);
    log.write(reason, "err");
    tellStarter(`FAILED ${reason}`);
    log.close();
    return 1;
  }
  tellStarter("READY");
  return finish(options, log, started);
}

interface Started {
  reader: RangeReader;
  image: LazyImage;
  file: FileHandle;
  temp: string;
  expected: Expectation | undefined;
  kit: ToolKit;
  server: NbdServer;
  nbd: { device: string; number: DeviceNumber };
  loop: { device: string; number: DeviceNumber };
}

async function start(options: LazyOptions, log: KernelLog, undo: Undo): Promise<Started> {
  const { pull } = options;
  const idleTimeoutMs = (pull.idleTimeoutSeconds ?? 30) * 1000;
  const expected = await expectedHash(pull, idleTimeoutMs);
  const reader = await openRangeReader(pull.url, {
    mirrors: pull.mirrors ?? [], idleTimeoutMs, caFile: pull.caFile, httpProxy: pull.httpProxy, httpsProxy: pull.httpsProxy,
    noProxy: pull.noProxy, dnsPaths: pull.dnsPaths,
  });
  undo.push(() => reader.close());

  // The copy: a hidden temporary next to DEST, as a pull makes it; DEST itself only once it is complete.
  const dest = pull.dest;
  await mkdir(dirname(dest), { recursive: true });
  await inspectDestination(dest, "file");
  await ensureSpace(dirname(dest), { bytes: reader.size, exact: true }, { memoryLimit: pull.memoryLimit });
  const temp = temporaryPath(dest);
  const file = await open(temp, "wx+", 0o644);
  undo.push(() => file.close().then(() => rm(temp, { force: true })));
  await file.truncate(reader.size);
  await setXattrs(temp, { "user.source_url": redactUrl(pull.url) }).catch(() => undefined);

  const image = createLazyImage({
    source: reader, file, outageLimitMs: options.outageLimitMs,
    backoff: { baseMs: (pull.retryDelaySeconds ?? 1) * 1000, capMs: 10_000 },
    log: (line) => log.write(line),
  });
  undo.push(() => image.stop());

  const kit = await buildToolKit(KIT_DIR, KIT_TOOLS);
  undo.push(() => kit.remove());

  const loopDevice = (await runTool("losetup", ["--find", "--show", "--read-only", temp])).trim();
  undo.push(() => runTool("losetup", ["--detach", loopDevice]));
  const loop = { device: loopDevice, number: deviceNumberOf(await stat(loopDevice)) };

  const name = basename(dest);
  const server = createNbdServer({ name, size: reader.size, read: (offset, length) => image.read(offset, length) }, {
    onReadError: readErrorLog(log),
    onProtocolError: (message) => log.write(`NBD client: ${message}`, "warning"),
  });
  const socketPath = `${options.deviceLink}.sock`;
  await mkdir(dirname(socketPath), { recursive: true });
  await rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => { server.off("error", reject); resolve(); });
  });
  undo.push(async () => { server.close(); server.closeConnections(); });
  // 512-byte blocks, as the loop device over the copy has: the tables then move between devices whose
  // logical block size is the same, and a partition on any sector boundary maps.
  const nbd = await connectNbd({ socketPath, exportName: name, blockSize: 512 });
  undo.push(() => disconnectNbd(nbd.device));
  // The kernel holds the one connection nbd-client made: no one else may connect.
  server.close();
  await rm(socketPath, { force: true });
  await linkAtomically(nbd.device, options.deviceLink);
  await leaveUnitCgroup();
  await writeFile(options.pidFile, `${process.pid}\n`);
  log.write(`serving ${reader.url} (${formatBytes(reader.size)}) at ${nbd.device}, copying it to ${dest} in the background (loop device ${loop.device} once complete)`);
  // From here on this process reaches files only through the kit (switch-root takes its root's paths away).
  kit.enter();
  image.startHydration();
  return { reader, image, file, temp, expected, kit, server, nbd, loop };
}

/**
 * Moves this process into the root control group. systemd stops the unit at switch-root (the system's
 * first isolate stops every unit whose file is gone, and the initrd's generated units are) and at
 * shutdown, killing what is in the unit's control group; a root storage daemon must outlive both, as
 * the kernel threads in the root group do. The '@' of argv[0] keeps it out of the killing sprees.
 */
async function leaveUnitCgroup(): Promise<void> {
  for (const procs of ["/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/systemd/cgroup.procs"]) {
    try {
      await writeFile(procs, `${process.pid}\n`);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`cannot move the server out of its unit's control group (${procs}): ${(error as Error).message}`);
    }
  }
  throw new Error("cannot move the server out of its unit's control group: no cgroup file system at /sys/fs/cgroup");
}

/**
 * Logs failed reads (the kernel got EIO for them) without flooding the kernel log while the server is
 * gone: the first one, then at most one line every 10 s saying how many more failed.
 */
function readErrorLog(log: KernelLog): (error: Error, offset: number, length: number) => void {
  let lastLine = -Infinity;
  let unreported = 0;
  return (error, offset, length) => {
    const now = performance.now();
    if (now - lastLine < 10_000) {
      unreported++;
      return;
    }
    const more = unreported ? ` (and ${unreported} more failed reads since the last such line)` : "";
    log.write(`a read of ${formatBytes(length)} at byte ${offset} failed with an I/O error: ${error.message}${more}`, "err");
    lastLine = now;
    unreported = 0;
  };
}

/** The whole image's expected SHA-256 (verify=checksum|signature|sha256:), settled before anything is served. */
async function expectedHash(pull: PullOptions, idleTimeoutMs: number): Promise<Expectation | undefined> {
  if (pull.verify.kind === "no") return undefined;
  const client = createHttpClient({ idleTimeoutMs, caFile: pull.caFile, httpProxy: pull.httpProxy, httpsProxy: pull.httpsProxy, noProxy: pull.noProxy, dnsPaths: pull.dnsPaths });
  try {
    const transfer: TransferOptions = { client, mirrors: pull.mirrors, idleTimeoutMs, retries: pull.retries ?? 5 };
    return await expectImageHash(pull.verify, pull.url, { fetch: (url) => fetchSmallFile(url, transfer), keyring: pull.keyring, defaultKeyrings: pull.defaultKeyrings });
  } finally {
    await client.close();
  }
}

/** Waits for the copy, switches the root to it and exits; refuses SIGTERM until then. */
async function finish(options: LazyOptions, log: KernelLog, s: Started): Promise<number> {
  let switched = false;
  const refuse = (signal: string) => {
    if (!switched) log.write(`${signal} ignored: the root file system still reads through ${s.nbd.device}; the server exits once the copy is complete`, "warning");
  };
  process.on("SIGTERM", () => refuse("SIGTERM"));
  process.on("SIGINT", () => refuse("SIGINT"));
  process.on("SIGHUP", () => undefined);
  const began = Date.now();
  const progress = setInterval(() => {
    const p = s.image.progress();
    log.write(`${((100 * p.localBytes) / p.size).toFixed(0)}% copied (${formatBytes(p.localBytes)} of ${formatBytes(p.size)}), ${p.demandReads} reads waited for the network`, "info");
  }, PROGRESS_EVERY_MS);
  try {
    await s.image.completion;
  } catch (error) {
    clearInterval(progress);
    // The root keeps reading through the network (blocks already local are served from the copy).
    log.write(`the copy cannot be completed: ${oneLine(error)}; the root file system stays on ${s.nbd.device}`, "crit");
    return new Promise<number>(() => undefined);
  }
  clearInterval(progress);
  const seconds = (Date.now() - began) / 1000;
  log.write(`copied ${formatBytes(s.reader.size)} in ${seconds.toFixed(1)} s (${(s.reader.size / 1e6 / seconds).toFixed(1)} MB/s) to ${options.pull.dest}`);
  const check = await checkCopy(s.file, s.reader.size, s.expected, { url: options.pull.url, dest: options.pull.dest, temp: s.temp });
  if (check.line) log.write(check.line, check.verified ? "notice" : "crit");

  try {
    const switchStart = performance.now();
    const names = await retargetDevices(s.nbd.number, s.loop.number, (args) => s.kit.run("dmsetup", args));
    const switchMs = performance.now() - switchStart;
    log.write(`switched ${names.length ? names.join(", ") : "no device"} from ${s.nbd.device} (${formatDeviceNumber(s.nbd.number)}) to the local copy on ${s.loop.device} (${formatDeviceNumber(s.loop.number)}) in ${switchMs.toFixed(0)} ms`);
  } catch (error) {
    // A device left on the NBD device still reads through this server: keep serving, from the complete copy.
    log.write(`cannot switch to the local copy: ${oneLine(error)}; serving ${s.nbd.device} from the copy, without the network`, "crit");
    await s.reader.close();
    return new Promise<number>(() => undefined);
  }
  switched = true;
  await s.reader.close();
  await disconnectNbd(s.nbd.device, (args) => s.kit.run("nbd-client", args))
    .catch((error: unknown) => log.write(`cannot disconnect ${s.nbd.device}: ${oneLine(error)}`, "warning"));
  s.server.closeConnections();
  if (check.verified) {
    await rename(s.kit.rootPath(s.temp), s.kit.rootPath(options.pull.dest))
      .then(() => log.write(`the copy is ${options.pull.dest} now; ${s.nbd.device} is released and the network server exits`))
      .catch((error: unknown) => log.write(`cannot move the copy to ${options.pull.dest}: ${oneLine(error)}`, "warning"));
  } else {
    log.write(`${s.nbd.device} is released and the network server exits; the copy stays at ${s.temp}`, "warning");
  }
  await s.file.close();
  await s.kit.remove().catch(() => undefined);
  log.close();
  return 0;
}

function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s*\n\s*/g, " ").trim() || "failed";
}
