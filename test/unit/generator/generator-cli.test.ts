// The generator as systemd runs it: the built executable, argv, environment hooks, exit status.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { requireExecutable } from "./built-executable.ts";
import { bootCurrent, END_NODE, ipv4Node, loadOption, macNode, makeEfivarfs, uriNode, utf16z } from "./efi-fixtures.ts";
import { tempDir } from "../../support/temp-dir.ts";

function runGenerator(env: Record<string, string>, args?: string[], argv0?: string) {
  const exe = requireExecutable();
  const out = tempDir("netimport-gen-");
  const dirs = ["normal", "early", "late"].map((d) => join(out, d));
  const command = argv0 ?? exe;
  const result = spawnSync(command, argv0 ? (args ?? dirs) : ["generator", ...(args ?? dirs)], {
    env: { NETIMPORT_EFIVARFS: join(out, "no-efivarfs"), NETIMPORT_ROOT: join(out, "root"), ...env },
    encoding: "utf8",
  });
  return { ...result, out, dirs };
}

function listTree(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, encoding: "utf8" }).sort();
  } catch {
    return [];
  }
}

test("invoked as netimport-generator through a link, with one or three folders", () => {
  const exe = requireExecutable();
  const bin = tempDir("netimport-link-");
  const link = join(bin, "netimport-generator");
  symlinkSync(exe, link);
  try {
    const three = runGenerator({ SYSTEMD_IN_INITRD: "1", SYSTEMD_PROC_CMDLINE: "rd.systemd.import=tar,root::http://h/r.tar" }, undefined, link);
    assert.equal(three.status, 0, three.stderr);
    assert.deepEqual(listTree(three.dirs[1]!), [
      "initrd-root-device.target.d", "initrd-root-device.target.d/50-root-device.conf", "initrd-root-fs.target.requires",
      "initrd-root-fs.target.requires/netimport-remount-sysroot.service", "initrd-root-fs.target.requires/sysroot.mount",
      "netimport-remount-sysroot.service", "sysroot.mount",
    ]);
    assert.equal(readlinkSync(join(three.dirs[1]!, "initrd-root-fs.target.requires/sysroot.mount")), "../sysroot.mount");
    assert.match(readFileSync(join(three.dirs[0]!, "netimport-pull-run-machines-r.service"), "utf8"), new RegExp(`ExecStart=${exe} pull --type=tar`));

    const one = runGenerator({ SYSTEMD_IN_INITRD: "0", SYSTEMD_PROC_CMDLINE: "systemd.import=sysext::http://h/s.raw" }, [join(bin, "only")], link);
    assert.equal(one.status, 0, one.stderr);
    assert.deepEqual(listTree(join(bin, "only")), ["multi-user.target.wants", "multi-user.target.wants/netimport-pull-var-lib-extensions-s.raw.service", "netimport-pull-var-lib-extensions-s.raw.service"]);

    const two = runGenerator({}, ["a", "b"], link);
    assert.equal(two.status, 1);
    assert.match(two.stderr, /takes one or three arguments/);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});

test("bad entries are logged with the value and the rule, good ones still generated, exit 0", () => {
  const r = runGenerator({ SYSTEMD_IN_INITRD: "1", SYSTEMD_PROC_CMDLINE: "rd.systemd.import=raw::ftp://x/y rd.systemd.import=::http://h/good.raw" });
  assert.equal(r.status, 0);
  assert.match(r.stderr, /netimport-generator: rd\.systemd\.import= in \/proc\/cmdline: Not a valid URL .*ftp:\/\/x\/y Ignoring this entry\./);
  assert.ok(listTree(r.dirs[0]!).includes("netimport-pull-run-machines-good.raw.service"));
});

test("regression: a LOCAL name too long for a unit name costs only that entry, and the root is still wired", () => {
  const long = `rd.systemd.import=sysext:${"n".repeat(240)}:http://h/x.raw`;
  const r = runGenerator({ SYSTEMD_IN_INITRD: "1", SYSTEMD_PROC_CMDLINE: `rd.systemd.import=raw,root::http://h/root.raw ${long} rd.systemd.import=sysext::http://h/tools.raw` });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /netimport-generator: rd\.systemd\.import= in \/proc\/cmdline: 'n{240}' \(http:\/\/h\/x\.raw\): the LOCAL name would make the unit name netimport-pull-run-extensions-n{240}\.raw\.service 282 bytes long, over systemd's limit of 255: use a shorter LOCAL name\. Ignoring this entry\./);
  assert.deepEqual(listTree(r.dirs[1]!), [
    "initrd-fs.target.requires", "initrd-fs.target.requires/sysroot-usr.mount",
    "initrd-root-device.target.d", "initrd-root-device.target.d/50-root-device.conf", "initrd-root-fs.target.requires", "initrd-root-fs.target.requires/sysroot.mount",
    "initrd-usr-fs.target.requires", "initrd-usr-fs.target.requires/sysusr-usr.mount", "sysroot-usr.mount", "sysroot.mount", "sysusr-usr.mount",
  ]);
  assert.ok(listTree(r.dirs[0]!).includes("initrd.target.wants/netimport-pull-run-extensions-tools.raw.service"));
});

test("a unit that cannot be written: exit status 1, after everything else was written", () => {
  const out = tempDir("netimport-gen-taken-");
  const dirs = ["normal", "early", "late"].map((d) => join(out, d));
  mkdirSync(join(dirs[0]!, "netimport-pull-run-extensions-tools.raw.service"), { recursive: true });
  const r = spawnSync(requireExecutable(), ["generator", ...dirs], {
    env: { SYSTEMD_IN_INITRD: "1", NETIMPORT_ROOT: join(out, "root"), NETIMPORT_EFIVARFS: join(out, "none"), SYSTEMD_PROC_CMDLINE: "rd.systemd.import=sysext::http://h/tools.raw rd.systemd.import=raw,root::http://h/root.raw rd.systemd.import=sysext::http://h/more.raw" },
    encoding: "utf8",
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /Failed to write .*netimport-pull-run-extensions-tools\.raw\.service: EEXIST/);
  assert.ok(listTree(dirs[1]!).includes("initrd-root-fs.target.requires/sysroot.mount"));
  assert.ok(listTree(dirs[0]!).includes("initrd.target.wants/netimport-pull-run-extensions-more.raw.service"));
  assert.ok(!listTree(dirs[0]!).includes("initrd.target.wants/netimport-pull-run-extensions-tools.raw.service"));
});

test("regression: log lines carry no control character and no credential, units no credential", () => {
  const root = tempDir("netimport-secret-root-");
  mkdirSync(join(root, "etc/netimport"), { recursive: true });
  writeFileSync(join(root, "etc/netimport/netimport.conf"), "[Download]\nHTTPSProxy=http://proxyuser:pr0xy@proxy:3128\nNoProxy=\x1b[2J\n[Bad\x1b]\n");
  const r = runGenerator({
    SYSTEMD_IN_INITRD: "1",
    NETIMPORT_ROOT: root,
    SYSTEMD_PROC_CMDLINE: `rd.systemd.import=raw,root::https://deploy:s3cret@h/root.raw "rd.systemd.import=bogus\x1b[31m::https://u:pw@h/a b" "rd.systemd.import.failure_action=reboot\nExecStartPre=/bin/false"`,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /[\x00-\x09\x0b-\x1f\x7f]/);
  assert.doesNotMatch(r.stderr, /s3cret|pr0xy|u:pw/);
  assert.match(r.stderr, /Unknown pull option, ignoring: bogus\\x1b\[31m/);
  assert.match(r.stderr, /Invalid value for rd\.systemd\.import\.failure_action= kernel command line switch, ignoring: reboot\\nExecStartPre=\/bin\/false/);
  assert.match(r.stderr, /netimport\.conf:4: Bad characters in section header '\[Bad\\x1b\]'/);
  const unit = readFileSync(join(r.dirs[0]!, "netimport-pull-run-machines-root.raw.service"), "utf8");
  assert.doesNotMatch(unit, /s3cret|pr0xy|ExecStartPre|FailureAction/);
  assert.match(unit, /--https-proxy=http:\/\/\*\*\*@proxy:3128 --secrets-from=\/etc\/netimport\/netimport\.conf --secrets-from=\/proc\/cmdline https:\/\/\*\*\*@h\/root\.raw /);
});

test("initrd detection from /etc/initrd-release under NETIMPORT_ROOT", () => {
  const r = runGenerator({ SYSTEMD_PROC_CMDLINE: "rd.systemd.import=::http://h/a.raw systemd.import=::http://h/b.raw" });
  assert.ok(listTree(r.dirs[0]!).includes("netimport-pull-var-lib-machines-b.raw.service"));
  mkdirSync(join(r.out, "root/etc"), { recursive: true });
  writeFileSync(join(r.out, "root/etc/initrd-release"), "ID=initrd\n");
  const again = spawnSync(requireExecutable(), ["generator", join(r.out, "x")], {
    env: { NETIMPORT_ROOT: join(r.out, "root"), SYSTEMD_PROC_CMDLINE: "rd.systemd.import=::http://h/a.raw systemd.import=::http://h/b.raw" },
    encoding: "utf8",
  });
  assert.equal(again.status, 0, again.stderr);
  assert.ok(listTree(join(r.out, "x")).includes("netimport-pull-run-machines-a.raw.service"));
});

test("credential, config file with drop-ins, and the systemd-import-generator rule", () => {
  const root = tempDir("netimport-root-");
  const creds = join(root, "creds");
  mkdirSync(creds);
  writeFileSync(join(creds, "import.pull"), "# from the credential\nsysext::http://h/cred.raw\n");
  mkdirSync(join(root, "usr/lib/netimport/netimport.conf.d"), { recursive: true });
  mkdirSync(join(root, "etc/netimport/netimport.conf.d"), { recursive: true });
  writeFileSync(join(root, "usr/lib/netimport/netimport.conf"), "[Download]\nRetries=2\n");
  writeFileSync(join(root, "usr/lib/netimport/netimport.conf.d/50-x.conf"), "[Download]\nRetries=3\n");
  writeFileSync(join(root, "etc/netimport/netimport.conf.d/50-x.conf"), "[Download]\nRetries=4\n[Import]\nPull=confext::http://h/conf.raw\n");
  const env = { SYSTEMD_IN_INITRD: "1", NETIMPORT_ROOT: root, CREDENTIALS_DIRECTORY: creds, SYSTEMD_PROC_CMDLINE: "rd.systemd.pull=raw,machine:pulled:http://h/p.raw" };
  const r = runGenerator(env);
  assert.equal(r.status, 0, r.stderr);
  const units = listTree(r.dirs[0]!).filter((n) => n.endsWith(".service") && !n.includes("/"));
  assert.deepEqual(units, ["netimport-pull-run-confexts-conf.raw.service", "netimport-pull-run-extensions-cred.raw.service", "netimport-pull-run-machines-pulled.raw.service"]);
  assert.match(readFileSync(join(r.dirs[0]!, "netimport-pull-run-machines-pulled.raw.service"), "utf8"), /--retries=4 /);

  mkdirSync(join(root, "usr/lib/systemd/system-generators"), { recursive: true });
  writeFileSync(join(root, "usr/lib/systemd/system-generators/systemd-import-generator"), "");
  const withSystemd = runGenerator(env);
  assert.deepEqual(listTree(withSystemd.dirs[0]!).filter((n) => n.endsWith(".service") && !n.includes("/")), ["netimport-pull-run-confexts-conf.raw.service"]);
  rmSync(root, { recursive: true, force: true });
});

test("bootorigin from a BootCurrent device path in efivarfs, and `netimport boot-url`", () => {
  const efivarfs = makeEfivarfs({
    BootCurrent: bootCurrent(4),
    Boot0004: loadOption("UEFI HTTPv4", Buffer.concat([macNode(), ipv4Node(), uriNode("http://10.0.2.2:18080/boot/uki.efi"), END_NODE])),
  });
  const r = runGenerator({ SYSTEMD_IN_INITRD: "1", NETIMPORT_EFIVARFS: efivarfs, SYSTEMD_PROC_CMDLINE: "rd.systemd.pull=tar,machine,verify=no,bootorigin:root:image.tar.xz root=bind:/run/machines/root" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(readFileSync(join(r.dirs[0]!, "netimport-pull-run-machines-root.service"), "utf8"), / http:\/\/10\.0\.2\.2:18080\/boot\/image\.tar\.xz \/run\/machines\/root\n/);
  assert.match(r.stderr, /Boot0004 device path \(BootCurrent\) is 'http:\/\/10\.0\.2\.2:18080\/boot\/uki\.efi'/);

  const url = spawnSync(requireExecutable(), ["boot-url"], { env: { NETIMPORT_EFIVARFS: efivarfs }, encoding: "utf8" });
  assert.equal(url.status, 0);
  assert.equal(url.stdout, "http://10.0.2.2:18080/boot/uki.efi\t(from Boot0004 device path (BootCurrent))\n");
  const stub = makeEfivarfs({ StubDeviceURL: utf16z("http://s/x.efi") });
  assert.equal(spawnSync(requireExecutable(), ["boot-url"], { env: { NETIMPORT_EFIVARFS: stub }, encoding: "utf8" }).stdout, "http://s/x.efi\t(from StubDeviceURL)\n");
  const secret = makeEfivarfs({ StubDeviceURL: utf16z("http://u:pw@s/x\x1b[2J.efi") });
  assert.equal(spawnSync(requireExecutable(), ["boot-url"], { env: { NETIMPORT_EFIVARFS: secret }, encoding: "utf8" }).stdout, "http://***@s/x\\x1b[2J.efi\t(from StubDeviceURL)\n");
  const none = spawnSync(requireExecutable(), ["boot-url"], { env: { NETIMPORT_EFIVARFS: "/nonexistent" }, encoding: "utf8" });
  assert.equal(none.status, 1);
  assert.match(none.stderr, /not booted via UEFI HTTP boot/);
});

test("runs with an empty environment from a read-only folder, as in an initrd", () => {
  const dir = tempDir("netimport-ro-");
  const copy = join(dir, "netimport");
  writeFileSync(copy, readFileSync(requireExecutable()), { mode: 0o555 });
  spawnSync("mount", ["--bind", "-o", "ro", dir, dir]);
  try {
    const version = spawnSync(copy, ["--version"], { env: {}, cwd: dir, encoding: "utf8" });
    assert.equal(version.status, 0, version.stderr);
    assert.match(version.stdout, /^netimport \d+\.\d+\.\d+\n$/);
    const out = tempDir("netimport-ro-out-");
    const gen = spawnSync(copy, ["generator", out], { env: { SYSTEMD_IN_INITRD: "1", SYSTEMD_PROC_CMDLINE: "rd.systemd.import=::http://h/a.raw" }, cwd: dir, encoding: "utf8" });
    assert.equal(gen.status, 0, gen.stderr);
    assert.ok(readdirSync(out).includes("netimport-pull-run-machines-a.raw.service"));
  } finally {
    spawnSync("umount", [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});
