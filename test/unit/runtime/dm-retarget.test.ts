// Moving device-mapper tables from /dev/nbdN to the loop device over the local copy. The real
// device-mapper only exists in the QEMU guests (this kernel has none), so dmsetup is a recording fake here
// that answers with real `dmsetup table` and `dmsetup info` output shapes; the boot tests switch real
// devices. deviceNumberOf reads real device nodes.
import assert from "node:assert/strict";
import { statSync, writeFileSync, type Stats } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { deviceNumberOf, formatDeviceNumber, type DeviceNumber } from "../../../runtime/device-number.ts";
import { RetargetError, retargetDevices } from "../../../runtime/dm-retarget.ts";
import { tempDir } from "../../support/temp-dir.ts";

const NBD: DeviceNumber = { major: 43, minor: 0 };
const LOOP: DeviceNumber = { major: 7, minor: 3 };
const ROOT_HASH = "4392712ba01368efdf14b05c76f9e4df0d53664630b5d48632ed17a137f39076";
/** A salt with the digits 4, 3 and 0 in it, next to each other, but never the token "43:0". */
const SALT = "43043a0b0c430d0e0f43004300430043aa430bbb430ccc430ddd430eee4300ff";

/** `dmsetup table` as the lazy root's stack prints it, with neighbours that must not be touched. */
const TABLES = [
  "netimport-lazy-root-p1: 0 2097152 linear 43:0 2048",
  "netimport-lazy-root-p2: 0 16384 linear 43:0 2099200",
  `netimport-lazy-root: 0 2097152 verity 1 253:0 253:1 4096 4096 262144 1 sha256 ${ROOT_HASH} ${SALT}`,
  "vg-data: 0 409600 linear 8:16 2048",
  "vg-data: 409600 409600 linear 143:0 2048",
  "joined: 0 100 linear 43:0 5000",
  "joined: 100 200 linear 43:01 0",
  "striped: 0 1024 striped 2 8 8:32 0 7:43:0 0",
  "",
].join("\n");

const info = (name: string, state: string) => `Name:              ${name}\nState:             ${state}\nRead Ahead:        256\nTables present:    LIVE\nOpen count:        1\nEvent number:      0\nMajor, minor:      253, 0\nNumber of targets: 1\n\n`;

type Answer = (args: string[]) => string;

/** A fake dmsetup: records every call; answers `table` and `info` like the real one, "" to the rest, unless `answer` says otherwise (by returning or throwing). */
function fakeDmsetup(table: string, answer: (args: string[], next: Answer) => string = (args, next) => next(args)) {
  const calls: string[][] = [];
  const standard: Answer = (args) => {
    if (args.length === 1 && args[0] === "table") return table;
    if (args[0] === "info") return info(args[1]!, args[1] === "joined" ? "ACTIVE" : "ACTIVE (READ-ONLY)");
    return "";
  };
  const dmsetup = async (args: string[]) => {
    calls.push(args);
    return answer(args, standard);
  };
  return { calls, dmsetup };
}

/** The calls that switch one device, in order. */
const switching = (name: string, table: string, readOnly = true) => [
  ["info", name],
  ["load", name, ...(readOnly ? ["--readonly"] : []), "--table", table],
  ["suspend", name],
  ["resume", name, "--noudevsync"],
];

const failing = (matches: (args: string[]) => boolean, message: string) => (args: string[], next: Answer) => {
  if (matches(args)) throw new Error(message);
  return next(args);
};
const is = (...expected: string[]) => (args: string[]) => expected.every((word, i) => args[i] === word);

describe("retargetDevices", () => {
  test("switches every device whose table names the old device, and no other, with exactly that token replaced", async () => {
    const { calls, dmsetup } = fakeDmsetup(TABLES);
    const switched = await retargetDevices(NBD, LOOP, dmsetup);
    assert.deepEqual(switched, ["netimport-lazy-root-p1", "netimport-lazy-root-p2", "joined"]);
    assert.deepEqual(calls, [
      ["table"],
      ...switching("netimport-lazy-root-p1", "0 2097152 linear 7:3 2048"),
      ...switching("netimport-lazy-root-p2", "0 16384 linear 7:3 2099200"),
      // A read-write device is loaded read-write; its second line names 43:01, another device.
      ...switching("joined", "0 100 linear 7:3 5000\n100 200 linear 43:01 0", false),
    ]);
  });

  test("switches a verity table that names the device, and keeps everything else in it byte for byte", async () => {
    const verity = `direct: 0 2097152 verity 1 43:0 43:0 4096 4096 262144 262145 sha256 ${ROOT_HASH} ${SALT} 1 ignore_zero_blocks\n`;
    const { calls, dmsetup } = fakeDmsetup(verity);
    assert.deepEqual(await retargetDevices(NBD, LOOP, dmsetup), ["direct"]);
    assert.deepEqual(calls[2], ["load", "direct", "--readonly", "--table", `0 2097152 verity 1 7:3 7:3 4096 4096 262144 262145 sha256 ${ROOT_HASH} ${SALT} 1 ignore_zero_blocks`]);
  });

  test("finds nothing to do when no table names the device, or there are no devices at all", async () => {
    for (const table of ["No devices found\n", "vg-data: 0 409600 linear 8:16 2048\n", ""]) {
      const { calls, dmsetup } = fakeDmsetup(table);
      assert.deepEqual(await retargetDevices(NBD, LOOP, dmsetup), []);
      assert.deepEqual(calls, [["table"]]);
    }
  });

  test("reads device names that contain a colon", async () => {
    const { calls, dmsetup } = fakeDmsetup("a:b: 0 8 linear 43:0 0\nc: 0 8 linear 43:0 8\n");
    assert.deepEqual(await retargetDevices(NBD, LOOP, dmsetup), ["a:b", "c"]);
    assert.deepEqual(calls[2], ["load", "a:b", "--readonly", "--table", "0 8 linear 7:3 0"]);
  });

  test("a failed load changes nothing: the inactive table is cleared, the other devices still switch", async () => {
    const { calls, dmsetup } = fakeDmsetup(TABLES, failing(is("load", "netimport-lazy-root-p1"), "dmsetup load failed: device-mapper: reload ioctl on netimport-lazy-root-p1 failed: Invalid argument"));
    const error = await retargetDevices(NBD, LOOP, dmsetup).then(() => assert.fail("resolved"), (e: unknown) => e);
    assert.ok(error instanceof RetargetError);
    assert.deepEqual(error.switched, ["netimport-lazy-root-p2", "joined"]);
    assert.deepEqual(error.failures, [{ name: "netimport-lazy-root-p1", step: "load", message: "dmsetup load failed: device-mapper: reload ioctl on netimport-lazy-root-p1 failed: Invalid argument", suspended: false }]);
    assert.equal(error.message, "switched netimport-lazy-root-p2, joined from 43:0 to 7:3, but could not switch netimport-lazy-root-p1 (load: dmsetup load failed: device-mapper: reload ioctl on netimport-lazy-root-p1 failed: Invalid argument; left on 43:0)");
    assert.deepEqual(calls.slice(1, 4), [
      ["info", "netimport-lazy-root-p1"],
      ["load", "netimport-lazy-root-p1", "--readonly", "--table", "0 2097152 linear 7:3 2048"],
      ["clear", "netimport-lazy-root-p1"],
    ]);
    assert.deepEqual(calls.slice(4), [...switching("netimport-lazy-root-p2", "0 16384 linear 7:3 2099200"), ...switching("joined", "0 100 linear 7:3 5000\n100 200 linear 43:01 0", false)]);
  });

  test("a failed suspend drops the new table and resumes the device on its old one", async () => {
    const table = "p1: 0 8 linear 43:0 0\n";
    const { calls, dmsetup } = fakeDmsetup(table, failing(is("suspend"), "suspend ioctl failed: Interrupted system call"));
    const error = await retargetDevices(NBD, LOOP, dmsetup).then(() => assert.fail("resolved"), (e: unknown) => e as RetargetError);
    assert.deepEqual(error.failures, [{ name: "p1", step: "suspend", message: "suspend ioctl failed: Interrupted system call", suspended: false }]);
    assert.deepEqual(error.switched, []);
    assert.deepEqual(calls.slice(1), [["info", "p1"], ["load", "p1", "--readonly", "--table", "0 8 linear 7:3 0"], ["suspend", "p1"], ["clear", "p1"], ["resume", "p1", "--noudevsync"]]);
  });

  test("says so loudly when a device may be left suspended", async () => {
    const table = "p1: 0 8 linear 43:0 0\n";
    const { dmsetup } = fakeDmsetup(table, failing((args) => args[0] === "suspend" || args[0] === "resume", "ioctl failed: Device or resource busy"));
    const error = await retargetDevices(NBD, LOOP, dmsetup).then(() => assert.fail("resolved"), (e: unknown) => e as RetargetError);
    assert.equal(error.failures[0]!.suspended, true);
    assert.match(error.message, /^could not switch p1 \(suspend: ioctl failed: Device or resource busy; LEFT SUSPENDED: I\/O on it hangs until `dmsetup resume p1`\)$/);
  });

  test("a failed resume is tried once more: switched when the new table is live afterwards", async () => {
    let resumes = 0;
    const table = "p1: 0 8 linear 43:0 0\n";
    const { calls, dmsetup } = fakeDmsetup(table, (args, next) => {
      if (args[0] === "resume" && resumes++ === 0) throw new Error("resume ioctl failed: Interrupted system call");
      if (is("table", "p1")(args)) return "0 8 linear 7:3 0\n";
      return next(args);
    });
    assert.deepEqual(await retargetDevices(NBD, LOOP, dmsetup), ["p1"]);
    assert.deepEqual(calls.slice(4), [["resume", "p1", "--noudevsync"], ["resume", "p1", "--noudevsync"], ["table", "p1"]]);
  });

  test("a failed resume whose retry brought back the old table is reported, the device running", async () => {
    let resumes = 0;
    const table = "p1: 0 8 linear 43:0 0\n";
    const { dmsetup } = fakeDmsetup(table, (args, next) => {
      if (args[0] === "resume" && resumes++ === 0) throw new Error("resume ioctl failed: Invalid argument");
      if (is("table", "p1")(args)) return "0 8 linear 43:0 0\n"; // the kernel refused the swap and dropped the new table
      return next(args);
    });
    const error = await retargetDevices(NBD, LOOP, dmsetup).then(() => assert.fail("resolved"), (e: unknown) => e as RetargetError);
    assert.deepEqual(error.failures, [{ name: "p1", step: "resume", message: "resume ioctl failed: Invalid argument", suspended: false }]);
  });

  test("a resume that fails twice leaves the device suspended, and says so", async () => {
    const table = "p1: 0 8 linear 43:0 0\np2: 0 8 linear 43:0 8\n";
    const { calls, dmsetup } = fakeDmsetup(table, failing(is("resume", "p1"), "resume ioctl failed: Input/output error"));
    const error = await retargetDevices(NBD, LOOP, dmsetup).then(() => assert.fail("resolved"), (e: unknown) => e as RetargetError);
    assert.deepEqual(error.failures, [{ name: "p1", step: "resume", message: "resume ioctl failed: Input/output error", suspended: true }]);
    assert.deepEqual(error.switched, ["p2"]);
    assert.equal(calls.filter(is("resume", "p1")).length, 2);
  });

  test("a device whose info cannot be read is left alone", async () => {
    const { calls, dmsetup } = fakeDmsetup("p1: 0 8 linear 43:0 0\n", failing(is("info"), "Device p1 not found"));
    const error = await retargetDevices(NBD, LOOP, dmsetup).then(() => assert.fail("resolved"), (e: unknown) => e as RetargetError);
    assert.deepEqual(error.failures, [{ name: "p1", step: "info", message: "Device p1 not found", suspended: false }]);
    assert.deepEqual(calls, [["table"], ["info", "p1"]]);
  });

  test("fails before touching anything when dmsetup table fails or prints what it does not know", async () => {
    const broken = fakeDmsetup("", failing(is("table"), "dmsetup table failed: /dev/mapper/control: open failed: No such device"));
    await assert.rejects(retargetDevices(NBD, LOOP, broken.dmsetup), /^Error: dmsetup table failed: \/dev\/mapper\/control: open failed/);
    assert.deepEqual(broken.calls, [["table"]]);
    const odd = fakeDmsetup("p1: 0 8 linear 43:0 0\nsomething odd\n");
    await assert.rejects(retargetDevices(NBD, LOOP, odd.dmsetup), /^Error: unexpected line in dmsetup table output: "something odd"$/);
    assert.deepEqual(odd.calls, [["table"]]);
    await assert.rejects(retargetDevices(NBD, NBD, odd.dmsetup), /cannot retarget 43:0 to itself/);
  });
});

describe("deviceNumberOf", () => {
  test("reads real device nodes", () => {
    assert.deepEqual(deviceNumberOf("/dev/null"), { major: 1, minor: 3 });
    assert.deepEqual(deviceNumberOf(statSync("/dev/null")), { major: 1, minor: 3 });
    assert.deepEqual(deviceNumberOf("/dev/loop-control"), { major: 10, minor: 237 });
    assert.equal(formatDeviceNumber(deviceNumberOf("/dev/loop-control")), "10:237");
  });

  test("refuses what is not a device node", () => {
    const file = join(tempDir("netimport-devnum-"), "file");
    writeFileSync(file, "");
    assert.throws(() => deviceNumberOf(file), /file is not a device node$/);
    assert.throws(() => deviceNumberOf("/dev"), /\/dev is not a device node$/);
  });

  test("decodes majors above 4095 and minors above 255 as Linux encodes them (glibc's makedev)", () => {
    const makedev = (major: bigint, minor: bigint) => (minor & 0xffn) | ((major & 0xfffn) << 8n) | ((minor & ~0xffn) << 12n) | ((major & ~0xfffn) << 32n);
    const device = (rdev: bigint) => ({ rdev, isBlockDevice: () => true, isCharacterDevice: () => false }) as unknown as Stats;
    for (const [major, minor] of [[259, 1048575], [4096, 256], [0xfffff, 0xfffff], [43, 0], [7, 3]] as const) {
      assert.deepEqual(deviceNumberOf(device(makedev(BigInt(major), BigInt(minor)))), { major, minor });
    }
  });
});
