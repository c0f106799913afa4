// Property: no command line, credential or config file makes the generator crash, and every unit it
// renders is well formed: no control character, no credential, no action systemd does not know, no
// name over systemd's limits; and whatever else is there, a good entry is never dropped.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { isEmergencyAction } from "../../../generator/emergency-action.ts";
import { makePlan } from "../../../generator/plan.ts";
import { redactSecrets } from "../../../generator/redact.ts";
import { renderUnits } from "../../../generator/render-units.ts";

const secretUrl = fc.constantFrom("https://u:p@h/s.raw", "http://tok@h/t.tar.gz", "https://a@b:c@h/x.raw", "http://user:pa%40ss@proxy:3128");
const action = fc.constantFrom("reboot", "soft-reboot", "none", "exit-force", "Reboot", "reboot\nExecStartPre=/bin/evil", "", "poweroff now", "\x1b[2J", "halt\tx");
const pieces = fc.constantFrom(
  "raw", "tar", "root", "ro", "rw", "blockdev", "bootorigin", "machine", "sysext", "confext", "portable",
  "verify=no", "verify=checksum", "verify=signature", `verify=sha256:${"0".repeat(64)}`, "verify=sha256:", "runtime=yes", "runtime=0", "runtime=",
  "", ":", "::", ",", "=", "\"", "'", " ", "\\", "%", "$", "\n", "\t", "é", "\u0000", "\x1b", "\u009b", "\x7f",
  "http://h/a.raw", "https://h/b.tar.gz", "file:///c.raw.xz", "image.raw.xz", "http://", "ftp://x", "/", "..", ".#x",
  "rd.systemd.import=", "rd.systemd.pull=", "systemd.import=", "root=", "root=gpt-auto", "root=bind:/run/machines/",
  "root=/dev/disk/by-loop-ref/", ".raw-part2", "rd.systemd.import.success_action=", "rootdisk", "image",
);
const option = fc.constantFrom(
  "raw", "tar", "root", "ro", "rw", "blockdev", "bootorigin", "machine", "sysext", "confext", "portable",
  "verify=no", "verify=checksum", `verify=sha256:${"0".repeat(64)}`, "verify=sha256:", "runtime=yes", "runtime=", "bogus", "\x1b[0m",
);
const local = fc.constantFrom(
  "", "", "root", "rootdisk", "image", "my image", "..", ".#x", "a/b", "é", "a\tb",
  // Names near and over the limits: 255 bytes for a file name and, after escaping, for a unit name.
  "x".repeat(200), "x".repeat(251), "x".repeat(252), " ".repeat(50), " ".repeat(60), "é".repeat(60), "%".repeat(70),
);
const url = fc.oneof(
  fc.constantFrom("http://h/a.raw", "https://h/b.tar.gz", "file:///c.raw.xz", "image.raw.xz", "http://", "ftp://x", "http://h/", "x", `http://h/${"y".repeat(240)}.raw`),
  secretUrl,
);
/** A well-formed-looking entry, so that the interesting paths are reached, not just rejections. */
const expression = fc.tuple(fc.array(option, { maxLength: 5 }), local, url).map(([options, name, remote]) => `${options.join(",")}:${name}:${remote}`);
const entry = fc
  .tuple(fc.constantFrom("rd.systemd.import", "rd.systemd.pull", "systemd.import", "systemd.pull"), expression)
  .map(([key, value]) => (/[\s"]/.test(value) ? `"${key}=${value}"` : `${key}=${value}`));
const actionArgument = fc
  .tuple(fc.constantFrom("rd.systemd.import.success_action", "rd.systemd.import.failure_action", "systemd.pull.failure_action", "systemd.import.success_action"), action)
  .map(([key, value]) => `"${key}=${value}"`);
const rootArgument = fc.constantFrom(
  "root=gpt-auto", "root=bind:/run/machines/root", "root=/dev/disk/by-loop-ref/image.raw-part2", "root=/dev/disk/by-loop-ref/rootdisk.raw", "root=/dev/vda1", "root=tmpfs",
  `roothash=${"ab".repeat(32)}`, `usrhash=${"CD".repeat(48)}`, "roothash=abc", "usrhash", "roothash=", `"usrhash=${"ab".repeat(32)}\nExecStartPre=/bin/evil"`,
);
const cmdline = fc
  .array(fc.oneof({ weight: 4, arbitrary: entry }, actionArgument, rootArgument, pieces, fc.string({ maxLength: 12 })), { maxLength: 12 })
  .map((parts) => parts.join(" "));
const credential = fc.array(fc.oneof(expression, pieces, fc.string({ maxLength: 12 })), { maxLength: 6 }).map((lines) => lines.join("\n"));

const configValue = fc.oneof(expression, secretUrl, action, url, pieces, fc.string({ maxLength: 12 }),
  fc.constantFrom("512M", "1.5G", "50%", "0%", "101%", "4 G", "/etc/ca.pem", "/a\tb", "relative", "-1", "3", "2.5", ".lan, 10.0.0.0/8", "a\\", "true"));
const configKey = fc.constantFrom(
  "Pull", "SuccessAction", "FailureAction", "Mirror", "CAFile", "IdleTimeoutSec", "Retries", "HTTPSProxy", "HTTPProxy", "NoProxy", "ImageMemoryMax", "Keyring", "X-Mine", "Nope",
);
const configLine = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(configKey, configValue).map(([key, value]) => `${key}=${value}`) },
  fc.constantFrom("[Import]", "[Download]", "[Verify]", "[X-Vendor]", "[Other]", "[Download", "[A\"]", "", "# c", " ; c", "garbage", "=x", "\ufeff[Import]", "\\"),
);
const configFile = fc.array(configLine, { maxLength: 10 }).map((lines) => lines.join("\n"));

/** Good entries in every source; whatever surrounds them, each must become a pull unit. */
function sentinels(inInitrd: boolean) {
  const key = inInitrd ? "rd.systemd.import" : "systemd.import";
  return {
    cmdline: `${key}=sysext:sentinel_cmdline:http://h/s1.raw`,
    credential: "confext:sentinel_credential:https://h/s2.raw",
    config: { path: "/etc/netimport/netimport.conf.d/99-sentinel.conf", content: "[Import]\nPull=portable:sentinel_config:http://h/s3.raw\n" },
    locals: ["sentinel_cmdline", "sentinel_credential", "sentinel_config"],
  };
}

test("random command lines, credentials and config files: well-formed units, no entry lost", () => {
  let withRequests = 0;
  let withRoot = 0;
  let withSecrets = 0;
  let withActions = 0;
  fc.assert(
    fc.property(cmdline, fc.boolean(), fc.option(credential), fc.option(configFile), fc.boolean(), (text, inInitrd, credentialText, config, booted) => {
      const good = sentinels(inInitrd);
      const plan = makePlan({
        cmdline: `${good.cmdline} ${text}`,
        cmdlinePath: "/proc/cmdline",
        inInitrd,
        credential: { path: "/c/import.pull", text: `${good.credential}\n${credentialText ?? ""}` },
        configs: [...(config !== null ? [{ path: "/etc/netimport/netimport.conf", content: config }] : []), good.config],
        systemdImportGeneratorInstalled: false,
        bootUrl: () => (booted ? { url: "http://10.0.2.2/boot.efi", source: "StubDeviceURL" } : undefined),
      });
      const units = renderUnits(plan.requests, { executable: "/usr/lib/netimport/netimport", inInitrd, settings: plan.settings, actions: plan.actions });

      const locals = new Set(plan.requests.map((r) => r.local));
      for (const name of good.locals) {
        assert.ok(locals.has(name), `entry ${name} was dropped`);
        assert.ok(units.files.some((f) => f.name.startsWith("netimport-pull-") && f.name.endsWith(`-${name}.raw.service`)), `no unit for ${name}`);
      }
      const names = new Set<string>();
      for (const file of units.files) {
        assert.ok(!names.has(`${file.dir}/${file.name}`), `two units named ${file.name}`);
        names.add(`${file.dir}/${file.name}`);
        assert.match(file.name, /^[A-Za-z0-9:_.\\@-]+(\.d\/[A-Za-z0-9_.-]+)?$/);
        // A symlink is a mask of one of systemd's own units, nothing else.
        if (file.symlink !== undefined) assert.ok(file.symlink === "/dev/null" && /^systemd-veritysetup@(root|usr)\.service$/.test(file.name), file.name);
        for (const part of file.name.split("/")) assert.ok(Buffer.byteLength(part) <= 255, `name over 255 bytes: ${file.name}`);
        assert.equal(redactSecrets(file.text), file.text, `credentials in ${file.name}`);
        for (const line of file.text.split("\n")) {
          assert.ok(!/[\x00-\x1f\x7f]/.test(line), `control character in ${file.name}: ${JSON.stringify(line)}`);
          assert.ok(line === "" || line.startsWith("#") || line.startsWith("[") || /^[A-Za-z]+=/.test(line), `malformed line in ${file.name}: ${JSON.stringify(line)}`);
          const act = /^(?:Success|Failure)Action=(.*)$/.exec(line);
          if (act) {
            assert.ok(isEmergencyAction(act[1]!), `unvalidated action in ${file.name}: ${JSON.stringify(line)}`);
            withActions++;
          }
        }
        if (file.text.includes("***@")) withSecrets++;
      }
      for (const link of units.links) assert.ok(Buffer.byteLength(link.unit) <= 255, `link name over 255 bytes: ${link.unit}`);
      assert.ok(plan.requests.filter((r) => r.root).length <= 1);
      // root=tmpfs leaves the root to systemd: nothing of netimport's may wait for or mount it.
      if (plan.requests.some((r) => r.root?.kind === "usr")) {
        assert.ok(!units.files.some((f) => f.name === "sysroot.mount" || f.name.startsWith("initrd-root-device")), "a /usr-only image wired a root");
      }
      if (plan.requests.length > good.locals.length) withRequests++;
      if (plan.requests.some((r) => r.root)) withRoot++;
    }),
    { numRuns: 3000 },
  );
  // The generated inputs must reach the interesting paths, or this property proves nothing.
  assert.ok(withRequests > 30 && withRoot > 3 && withSecrets > 30 && withActions > 30, `${withRequests} runs made more requests, ${withRoot} a root, ${withSecrets} redacted URLs, ${withActions} actions`);
});
