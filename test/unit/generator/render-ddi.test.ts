// The units of a DDI root and of a /usr-only image: dm-verity, /usr, and what the hashes change.
import { test } from "node:test";
import assert from "node:assert/strict";
import { makePlan } from "../../../generator/plan.ts";
import { renderUnits, type RenderedUnits } from "../../../generator/render-units.ts";

const HASH = "e2a1b3c4d5e6f708192a3b4c5d6e7f80".repeat(2);
const USR_HASH = "0f".repeat(32);
const ATTACH = "netimport-attach-run-machines-root.raw.service";

function render(cmdline: string): RenderedUnits {
  const plan = makePlan({ cmdline, cmdlinePath: "/proc/cmdline", inInitrd: true, configs: [], systemdImportGeneratorInstalled: false, bootUrl: () => undefined });
  return renderUnits(plan.requests, { executable: "/x", inInitrd: true, settings: plan.settings, actions: plan.actions });
}

function unit(units: RenderedUnits, name: string): string {
  const file = units.files.find((f) => f.name === name);
  assert.ok(file, `no ${name} in ${units.files.map((f) => f.name).join(", ")}`);
  return file.text;
}

function exec(text: string): string {
  return /^ExecStart=(.*)$/m.exec(text)![1]!;
}

test("a DDI root: attach with the /usr link, dm-verity units that run only with a verity partition, /usr as fstab-generator mounts it", () => {
  const units = render("rd.systemd.import=raw,root::http://h/root.raw");
  assert.deepEqual(units.files.map((f) => `${f.dir}/${f.name}`), [
    "normal/netimport-pull-run-machines-root.raw.service", `normal/${ATTACH}`, "early/sysroot.mount", "early/initrd-root-device.target.d/50-root-device.conf",
    "normal/netimport-verity-root.service", "normal/netimport-verity-usr.service", "early/sysusr-usr.mount", "early/sysroot-usr.mount",
  ]);
  assert.equal(exec(unit(units, ATTACH)), "/x attach /run/machines/root.raw --partition=root --link=/run/netimport/root --usr-link=/run/netimport/usr --tmpfs-root=/sysroot --rw");

  const root = unit(units, "netimport-verity-root.service");
  assert.equal(exec(root), "/x verity netimport-root --data=/run/netimport/root.data --hash=/run/netimport/root.hash --signature=/run/netimport/root.verity-sig --link=/run/netimport/root");
  for (const line of ["ConditionPathExists=/run/netimport/root.hash", `Requires=${ATTACH}`, `After=${ATTACH}`, "Before=sysroot.mount", "DefaultDependencies=no", "OnFailure=emergency.target", "Type=oneshot", "RemainAfterExit=yes", "StandardOutput=journal+console", "SourcePath=/proc/cmdline"]) {
    assert.match(root, new RegExp(`^${line.replaceAll(".", "\\.").replaceAll("+", "\\+")}$`, "m"), line);
  }
  assert.match(root, /^# It only runs when the image has a verity partition for its root partition$/m);
  const usr = unit(units, "netimport-verity-usr.service");
  assert.equal(exec(usr), "/x verity netimport-usr --data=/run/netimport/usr.data --hash=/run/netimport/usr.hash --signature=/run/netimport/usr.verity-sig --link=/run/netimport/usr");
  assert.match(usr, /^ConditionPathExists=\/run\/netimport\/usr\.hash\nRequires=netimport-attach-run-machines-root\.raw\.service\nAfter=netimport-attach-run-machines-root\.raw\.service\nBefore=sysusr-usr\.mount$/m);

  const sysroot = unit(units, "sysroot.mount");
  assert.match(sysroot, /^Requires=netimport-verity-root\.service\nAfter=netimport-verity-root\.service$/m);
  assert.match(sysroot, /^What=\/run\/netimport\/root\nWhere=\/sysroot\nOptions=rw$/m);
  assert.match(unit(units, "initrd-root-device.target.d/50-root-device.conf"), /^Requires=netimport-verity-root\.service\nAfter=netimport-verity-root\.service$/m);

  const sysusr = unit(units, "sysusr-usr.mount");
  assert.match(sysusr, /^ConditionPathExists=\/run\/netimport\/usr$/m);
  assert.match(sysusr, /^Requires=netimport-verity-usr\.service\nAfter=netimport-verity-usr\.service\nBefore=initrd-usr-fs\.target$/m);
  assert.match(sysusr, /^What=\/run\/netimport\/usr\nWhere=\/sysusr\/usr\nOptions=ro$/m);
  const bind = unit(units, "sysroot-usr.mount");
  assert.match(bind, /^ConditionPathExists=\/run\/netimport\/usr$/m);
  assert.match(bind, /^What=\/sysusr\/usr\nWhere=\/sysroot\/usr\nOptions=bind$/m);
  assert.match(bind, /^Before=initrd-fs\.target$/m);
  assert.deepEqual(units.links.map((l) => `${l.dir}/${l.target}.${l.kind}/${l.unit}`), [
    "early/initrd-root-fs.target.requires/sysroot.mount", "early/initrd-usr-fs.target.requires/sysusr-usr.mount", "early/initrd-fs.target.requires/sysroot-usr.mount",
  ]);
});

test("pinned hashes: passed to attach and verity, verity always runs, the root is read-only, /usr is required", () => {
  const units = render(`rd.systemd.import=raw,root::http://h/root.raw roothash=${HASH} usrhash=${USR_HASH}`);
  assert.equal(exec(unit(units, ATTACH)), `/x attach /run/machines/root.raw --partition=root --link=/run/netimport/root --usr-link=/run/netimport/usr --roothash=${HASH} --usrhash=${USR_HASH}`);
  const root = unit(units, "netimport-verity-root.service");
  assert.match(exec(root), new RegExp(` --roothash=${HASH} --signature=/run/netimport/root\\.verity-sig `));
  assert.doesNotMatch(root, /^Condition/m);
  assert.match(root, /^# roothash= asks for dm-verity, so this always runs/m);
  const usr = unit(units, "netimport-verity-usr.service");
  // `netimport verity` names the hash of whatever device it sets up --roothash=.
  assert.match(exec(usr), new RegExp(` --roothash=${USR_HASH} `));
  assert.doesNotMatch(usr, /^Condition/m);
  assert.match(unit(units, "sysroot.mount"), /^Options=ro$/m);
  assert.doesNotMatch(unit(units, "sysusr-usr.mount"), /^Condition/m);
  assert.doesNotMatch(unit(units, "sysroot-usr.mount"), /^Condition/m);
  assert.match(unit(units, "sysusr-usr.mount"), /^# usrhash= says the image has a \/usr partition, so it always runs\.$/m);
  // systemd's veritysetup-generator would wait 90 s for /dev/disk/by-partuuid/ links of these hashes.
  for (const part of ["root", "usr"]) {
    assert.deepEqual(units.files.filter((f) => f.name === `systemd-veritysetup@${part}.service`).map((f) => [f.dir, f.symlink]), [["early", "/dev/null"]]);
  }
  assert.ok(!render("rd.systemd.import=raw,root::http://h/root.raw").files.some((f) => f.symlink !== undefined), "nothing masked without a pinned hash");
});

test("an ro DDI root is attached and mounted read-only; only roothash= changes the root's mode", () => {
  const ro = render("rd.systemd.import=raw,root,ro::http://h/root.raw");
  assert.doesNotMatch(exec(unit(ro, ATTACH)), /--rw/);
  assert.match(unit(ro, "sysroot.mount"), /^Options=ro$/m);
  const usrOnly = render(`rd.systemd.import=raw,root::http://h/root.raw usrhash=${USR_HASH}`);
  assert.match(exec(unit(usrOnly, ATTACH)), / --usrhash=\S+ --rw$/);
  assert.match(unit(usrOnly, "sysroot.mount"), /^Options=rw$/m);
  assert.match(unit(usrOnly, "netimport-verity-root.service"), /^ConditionPathExists=\/run\/netimport\/root\.hash$/m);
});

test("root=tmpfs: /usr from the image, no sysroot.mount and no wait for a root device", () => {
  const units = render(`rd.systemd.import=raw,root::http://h/usr.raw.xz root=tmpfs usrhash=${USR_HASH}`);
  const attach = "netimport-attach-run-machines-usr.raw.service";
  assert.deepEqual(units.files.map((f) => `${f.dir}/${f.name}`), [
    "normal/netimport-pull-run-machines-usr.raw.service", `normal/${attach}`, "normal/netimport-verity-usr.service",
    "early/systemd-veritysetup@usr.service", "early/sysusr-usr.mount", "early/sysroot-usr.mount",
  ]);
  // systemd's own verity unit for usrhash= would wait for partitions a loop device never gets.
  assert.equal(units.files.find((f) => f.name === "systemd-veritysetup@usr.service")?.symlink, "/dev/null");
  // /usr is read-only whatever the request says (rw is its default).
  assert.equal(exec(unit(units, attach)), `/x attach /run/machines/usr.raw --partition=usr --link=/run/netimport/usr --usrhash=${USR_HASH}`);
  assert.match(unit(units, attach), /^# Attaches the \/usr partition of \/run\/machines\/usr\.raw to a loop device \(read-only\) and links it at \/run\/netimport\/usr\.$/m);
  for (const name of ["netimport-pull-run-machines-usr.raw.service", attach]) {
    assert.match(unit(units, name), /^Before=initrd-usr-fs\.target\nOnFailure=emergency\.target$/m);
    assert.doesNotMatch(unit(units, name), /initrd-root-device/);
  }
  assert.match(exec(unit(units, "netimport-verity-usr.service")), new RegExp(`--roothash=${USR_HASH}`));
  for (const name of ["sysusr-usr.mount", "sysroot-usr.mount"]) {
    assert.doesNotMatch(unit(units, name), /^Condition/m);
    assert.match(unit(units, name), /^# With root=tmpfs the root is fstab-generator's empty tmpfs and the image provides \/usr, so it always runs\.$/m);
  }
  assert.deepEqual(units.links.map((l) => `${l.target}.${l.kind}/${l.unit}`), ["initrd-usr-fs.target.requires/sysusr-usr.mount", "initrd-fs.target.requires/sysroot-usr.mount"]);
});

test("roots that are not attached as a DDI get no dm-verity or /usr units", () => {
  for (const cmdline of [
    `rd.systemd.pull=raw,machine,verify=no,blockdev:image:https://example.com/image.raw.xz root=/dev/disk/by-loop-ref/image.raw-part2 roothash=${HASH}`,
    "rd.systemd.pull=raw,machine,verify=no,blockdev:image:https://example.com/image.raw root=/dev/disk/by-loop-ref/image.raw",
    `rd.systemd.import=tar,root::http://h/root.tar roothash=${HASH}`,
  ]) {
    const units = render(cmdline);
    assert.deepEqual(units.files.filter((f) => /verity|usr\.mount/.test(f.name)), [], cmdline);
    assert.doesNotMatch(units.files.map((f) => f.text).join("\n"), /--usr-link|--roothash|netimport-verity/, cmdline);
  }
});

test("every unit says where it came from and what it does", () => {
  for (const cmdline of [`rd.systemd.import=raw,root::http://h/root.raw roothash=${HASH}`, "rd.systemd.import=raw,root::http://h/usr.raw root=tmpfs"]) {
    for (const file of render(cmdline).files.filter((f) => f.symlink === undefined)) {
      assert.match(file.text, /^# Generated by netimport-generator from rd\.systemd\.import= in \/proc\/cmdline\.\n# \S/, file.name);
      if (!file.name.includes(".d/")) assert.match(file.text, /^SourcePath=\/proc\/cmdline$/m, file.name);
      if (!file.name.includes(".d/")) assert.match(file.text, /^Description=\S/m, file.name);
    }
  }
});
