// Property: no command line, credential or config file makes the generator crash; every unit it
// renders is well formed.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { makePlan } from "../../../generator/plan.ts";
import { renderUnits } from "../../../generator/render-units.ts";

const pieces = fc.constantFrom(
  "raw", "tar", "root", "ro", "rw", "blockdev", "bootorigin", "machine", "sysext", "confext", "portable",
  "verify=no", "verify=checksum", "verify=signature", `verify=sha256:${"0".repeat(64)}`, "verify=sha256:", "runtime=yes", "runtime=0", "runtime=",
  "", ":", "::", ",", "=", "\"", "'", " ", "\\", "%", "$", "\n", "\t", "é", "\u0000",
  "http://h/a.raw", "https://h/b.tar.gz", "file:///c.raw.xz", "image.raw.xz", "http://", "ftp://x", "/", "..", ".#x",
  "rd.systemd.import=", "rd.systemd.pull=", "systemd.import=", "root=", "root=gpt-auto", "root=bind:/run/machines/",
  "root=/dev/disk/by-loop-ref/", ".raw-part2", "rd.systemd.import.success_action=", "rootdisk", "image",
);
const option = fc.constantFrom(
  "raw", "tar", "root", "ro", "rw", "blockdev", "bootorigin", "machine", "sysext", "confext", "portable",
  "verify=no", "verify=checksum", `verify=sha256:${"0".repeat(64)}`, "verify=sha256:", "runtime=yes", "runtime=", "bogus",
);
const local = fc.constantFrom("", "", "root", "rootdisk", "image", "my image", "..", ".#x", "a/b", "é");
const url = fc.constantFrom("http://h/a.raw", "https://h/b.tar.gz", "file:///c.raw.xz", "image.raw.xz", "http://", "ftp://x", "http://h/", "x");
/** A well-formed-looking entry, so that the interesting paths are reached, not just rejections. */
const entry = fc
  .tuple(fc.constantFrom("rd.systemd.import", "rd.systemd.pull", "systemd.import", "systemd.pull"), fc.array(option, { maxLength: 5 }), local, url)
  .map(([key, options, name, remote]) => `${key}=${options.join(",")}:${name}:${remote}`);
const rootArgument = fc.constantFrom("root=gpt-auto", "root=bind:/run/machines/root", "root=/dev/disk/by-loop-ref/image.raw-part2", "root=/dev/disk/by-loop-ref/rootdisk.raw", "root=/dev/vda1");
const cmdline = fc
  .array(fc.oneof({ weight: 4, arbitrary: entry }, rootArgument, pieces, fc.string({ maxLength: 12 })), { maxLength: 12 })
  .map((parts) => parts.join(" "));

test("random command lines, credentials and config files never crash the generator", () => {
  let withRequests = 0;
  let withRoot = 0;
  fc.assert(
    fc.property(cmdline, fc.boolean(), fc.option(cmdline), fc.option(cmdline), fc.boolean(), (text, inInitrd, credential, config, booted) => {
      const plan = makePlan({
        cmdline: text,
        cmdlinePath: "/proc/cmdline",
        inInitrd,
        ...(credential !== null ? { credential: { path: "/c/import.pull", text: credential } } : {}),
        configs: config !== null ? [{ path: "/etc/netimport/netimport.conf", text: `[Import]\nPull=${config}\n[Download]\n${config}` }] : [],
        systemdImportGeneratorInstalled: false,
        bootUrl: () => (booted ? { url: "http://10.0.2.2/boot.efi", source: "StubDeviceURL" } : undefined),
      });
      const units = renderUnits(plan.requests, { executable: "/usr/lib/netimport/netimport", inInitrd, settings: plan.settings, actions: plan.actions });
      const names = new Set<string>();
      for (const file of units.files) {
        assert.ok(!names.has(`${file.dir}/${file.name}`), `two units named ${file.name}`);
        names.add(`${file.dir}/${file.name}`);
        assert.match(file.name, /^[A-Za-z0-9:_.\\-]+(\.d\/[A-Za-z0-9_.-]+)?$/);
        for (const line of file.text.split("\n")) {
          assert.ok(!/[\x00-\x08\x0b-\x1f]/.test(line), `control character in ${file.name}: ${JSON.stringify(line)}`);
          assert.ok(line === "" || line.startsWith("#") || line.startsWith("[") || /^[A-Za-z]+=/.test(line), `malformed line in ${file.name}: ${JSON.stringify(line)}`);
        }
      }
      assert.ok(plan.requests.filter((r) => r.root).length <= 1);
      if (plan.requests.length > 0) withRequests++;
      if (plan.requests.some((r) => r.root)) withRoot++;
    }),
    { numRuns: 3000 },
  );
  // The generated inputs must reach the interesting paths, or this property proves nothing.
  assert.ok(withRequests > 30 && withRoot > 3, `only ${withRequests} runs made requests, ${withRoot} a root`);
});
