// Connecting /dev/nbdN with nbd-client. This kernel has no nbd driver, so real connections happen in the
// QEMU boot tests; here sysfs is a directory of our own and nbd-client a recording fake that "connects" by
// writing that sysfs as the kernel would, plus one run of the real nbd-client (Debian's package) against a
// small NBD server on a Unix socket, which checks that it accepts our arguments and asks for our export.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import { connectNbd, disconnectNbd, type NbdConnectOptions } from "../../../runtime/nbd-device.ts";
import { findExecutable } from "../../../runtime/system-tools.ts";
import { tempDir } from "../../support/temp-dir.ts";

const SOCKET = "/run/netimport/root.sock";

/** A sysfs with the nbd driver loaded and nbd0..nbd3 present, none connected. */
function fakeSysfs(options: { driver?: boolean } = {}): string {
  const sysfs = tempDir("netimport-sysfs-");
  if (options.driver ?? true) {
    mkdirSync(join(sysfs, "module/nbd/parameters"), { recursive: true });
    for (let i = 0; i < 4; i++) {
      mkdirSync(join(sysfs, `block/nbd${i}`), { recursive: true });
      writeFileSync(join(sysfs, `block/nbd${i}/size`), "0\n");
      writeFileSync(join(sysfs, `block/nbd${i}/dev`), `43:${i * 32}\n`);
    }
  }
  return sysfs;
}

/** What the kernel shows once nbdN is connected: its size (and a pid file, as nbd's sysfs has). */
function connect(sysfs: string, index: number, sectors = 20480): void {
  writeFileSync(join(sysfs, `block/nbd${index}/size`), `${sectors}\n`);
  writeFileSync(join(sysfs, `block/nbd${index}/pid`), "1234\n");
}

/** A fake nbd-client: records its arguments, "connects" nbd1 in the fake sysfs and says so as nbd-client does. */
function fakeNbdClient(sysfs: string, behave: (args: string[]) => string | undefined = () => undefined) {
  const calls: string[][] = [];
  const run = async (args: string[]) => {
    calls.push(args);
    const custom = behave(args);
    if (custom !== undefined) return custom;
    if (args[0] === "-d") return "";
    connect(sysfs, 1);
    return "Negotiation: ..size = 10MB\nConnected /dev/nbd1\n";
  };
  return { calls, run };
}

const options = (sysfs: string, run: (args: string[]) => Promise<string>, more: Partial<NbdConnectOptions> = {}): NbdConnectOptions => ({
  socketPath: SOCKET, exportName: "root.raw", sysfs, nbdClient: run, modprobe: async () => assert.fail("modprobe must not run"), ...more,
});

describe("connectNbd", () => {
  test("asks nbd-client for a read-only device of 4096-byte blocks on the socket, with no timeout, and lets the kernel pick it", async () => {
    const sysfs = fakeSysfs();
    const client = fakeNbdClient(sysfs);
    assert.deepEqual(await connectNbd(options(sysfs, client.run)), { device: "/dev/nbd1", number: { major: 43, minor: 32 } });
    assert.deepEqual(client.calls, [["-unix", SOCKET, "-N", "root.raw", "-b", "4096", "-readonly"]]);
  });

  test("passes another block size and a timeout when asked", async () => {
    const sysfs = fakeSysfs();
    const client = fakeNbdClient(sysfs);
    await connectNbd(options(sysfs, client.run, { blockSize: 512, timeoutSec: 30 }));
    assert.deepEqual(client.calls, [["-unix", SOCKET, "-N", "root.raw", "-b", "512", "-readonly", "-timeout", "30"]]);
  });

  test("waits until the connected device shows its size", async () => {
    const sysfs = fakeSysfs();
    const client = fakeNbdClient(sysfs, () => {
      setTimeout(() => connect(sysfs, 2), 80);
      return "Negotiation: ..size = 10MB\nConnected /dev/nbd2\n";
    });
    const started = Date.now();
    assert.deepEqual(await connectNbd(options(sysfs, client.run)), { device: "/dev/nbd2", number: { major: 43, minor: 64 } });
    assert.ok(Date.now() - started >= 70, "resolved before the size appeared");
  });

  test("disconnects and fails when the device never shows a size", async () => {
    const sysfs = fakeSysfs();
    const client = fakeNbdClient(sysfs, (args) => (args[0] === "-d" ? undefined : "Connected /dev/nbd3\n"));
    await assert.rejects(connectNbd(options(sysfs, client.run, { settleMs: 100 })), /^Error: \/dev\/nbd3 was connected, but shows no size in .*\/block\/nbd3\/size$/);
    assert.deepEqual(client.calls.at(-1), ["-d", "/dev/nbd3"]);
  });

  test("fails when nbd-client names no device, and passes its failure on", async () => {
    const sysfs = fakeSysfs();
    const quiet = fakeNbdClient(sysfs, () => "Negotiation: ..size = 10MB\n");
    await assert.rejects(connectNbd(options(sysfs, quiet.run)), /^Error: nbd-client connected no device it named \(it printed "Negotiation: \.\.size = 10MB"\)$/);
    const failing = async () => {
      throw new Error("nbd-client -unix /run/netimport/root.sock … failed: Error: Failed to setup device, check dmesg");
    };
    await assert.rejects(connectNbd(options(sysfs, failing)), /Failed to setup device, check dmesg/);
  });

  test("loads the nbd module when the driver is not there, and says clearly when it cannot", async () => {
    const sysfs = fakeSysfs({ driver: false });
    const modprobes: string[][] = [];
    const client = fakeNbdClient(sysfs);
    const loads = async (args: string[]) => {
      modprobes.push(args);
      // As the kernel does on loading: the driver and its devices appear.
      mkdirSync(join(sysfs, "module/nbd"), { recursive: true });
      for (let i = 0; i < 2; i++) {
        mkdirSync(join(sysfs, `block/nbd${i}`), { recursive: true });
        writeFileSync(join(sysfs, `block/nbd${i}/size`), "0\n");
        writeFileSync(join(sysfs, `block/nbd${i}/dev`), `43:${i * 32}\n`);
      }
      return "";
    };
    assert.equal((await connectNbd(options(sysfs, client.run, { modprobe: loads }))).device, "/dev/nbd1");
    assert.deepEqual(modprobes, [["nbd"]]);

    const none = fakeSysfs({ driver: false });
    const missing = async () => {
      throw new Error("modprobe nbd failed: modprobe: FATAL: Module nbd not found in directory /lib/modules/6.18.44");
    };
    const unused = fakeNbdClient(none);
    await assert.rejects(connectNbd(options(none, unused.run, { modprobe: missing })), /^Error: the kernel's nbd module is not available \(modprobe nbd failed: modprobe: FATAL: Module nbd not found/);
    await assert.rejects(connectNbd(options(none, unused.run, { modprobe: async () => "" })), /^Error: the kernel's nbd module is not available \(modprobe nbd succeeded, but .*module\/nbd does not exist\)$/);
    assert.deepEqual(unused.calls, []);
  });

  test("says clearly when nbd-client is not installed", async () => {
    const sysfs = fakeSysfs();
    await assert.rejects(connectNbd({ socketPath: SOCKET, exportName: "root.raw", sysfs, path: tempDir("netimport-empty-path-") }), /^Error: nbd-client is not installed: a lazy image needs it \(Debian's nbd-client package\) in the initrd$/);
  });

  test("refuses arguments nbd-client would misread, before running anything", async () => {
    const sysfs = fakeSysfs();
    const client = fakeNbdClient(sysfs);
    const refused: [Partial<NbdConnectOptions>, RegExp][] = [
      [{ socketPath: "root.sock" }, /must be an absolute path, not root\.sock/],
      [{ socketPath: "/dev/nbd-socket" }, /nbd-client would read it as a device/],
      [{ exportName: "" }, /export name must not be empty/],
      [{ blockSize: 1000 }, /block size must be one of 512, 1024, 2048, 4096, not 1000/],
      [{ timeoutSec: 0 }, /timeout must be a whole number of seconds above 0, not 0/],
      [{ timeoutSec: 1.5 }, /not 1\.5/],
    ];
    for (const [bad, message] of refused) await assert.rejects(connectNbd(options(sysfs, client.run, bad)), message);
    assert.deepEqual(client.calls, []);
  });

  const realClient = findExecutable("nbd-client");
  test("the real nbd-client accepts these arguments, reaches the socket and asks for the export by name", { skip: realClient ? false : "nbd-client is not installed (apt-get install nbd-client)" }, async () => {
    const dir = tempDir("netimport-nbd-");
    const socketPath = join(dir, "server.sock");
    const seen: { option: number; name: string }[] = [];
    const server = createServer((socket: Socket) => {
      // Newstyle handshake: NBDMAGIC, IHAVEOPT, handshake flags (fixed newstyle, no zeroes).
      socket.write(Buffer.concat([Buffer.from("NBDMAGICIHAVEOPT"), Buffer.from([0, 3])]));
      let buffered = Buffer.alloc(0);
      socket.on("data", (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        // Client flags (4 bytes), then an option: IHAVEOPT, option, length, data (name length, name, …).
        if (buffered.length < 4 + 16) return;
        const length = buffered.readUInt32BE(4 + 12);
        if (buffered.length < 4 + 16 + length) return;
        const data = buffered.subarray(20, 20 + length);
        seen.push({ option: buffered.readUInt32BE(4 + 8), name: data.subarray(4, 4 + data.readUInt32BE(0)).toString() });
        socket.destroy(); // hang up: nbd-client fails before it would configure a device
      });
      socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    try {
      await assert.rejects(connectNbd({ socketPath, exportName: "root.raw", sysfs: fakeSysfs() }), /nbd-client -unix .*server\.sock -N root\.raw -b 4096 -readonly failed/);
      assert.deepEqual(seen, [{ option: 7, name: "root.raw" }], "NBD_OPT_GO for our export");
    } finally {
      server.close();
    }
  });
});

describe("disconnectNbd", () => {
  test("runs nbd-client -d /dev/nbdN through the runner given", async () => {
    const calls: string[][] = [];
    await disconnectNbd("/dev/nbd3", async (args) => {
      calls.push(args);
      return "";
    });
    assert.deepEqual(calls, [["-d", "/dev/nbd3"]]);
  });

  test("refuses anything but /dev/nbdN, which is all nbd-client 3.24 to 3.26 parse", async () => {
    const never = async () => assert.fail("nbd-client must not run");
    for (const device of ["/netimport-kit/dev/nbd3", "nbd3", "/dev/nbd", "/dev/nbd3p1", "/dev/loop3"]) {
      await assert.rejects(disconnectNbd(device, never), /is not an NBD device \(\/dev\/nbdN\)$/);
    }
  });

  test("the real nbd-client reaches the kernel over netlink (which has no nbd driver here)", { skip: findExecutable("nbd-client") && !existsSync("/sys/module/nbd") ? false : "needs nbd-client and a kernel without the nbd driver" }, async () => {
    await assert.rejects(disconnectNbd("/dev/nbd0"), /^Error: nbd-client -d \/dev\/nbd0 failed: Error: Couldn't resolve the nbd netlink family/);
  });
});
