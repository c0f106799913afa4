// UEFI HTTP boot: OVMF fetches a UKI over QEMU's user network; systemd-stub 262 publishes the boot URL
// (StubDeviceURL) and `bootorigin` resolves image names next to the UKI. systemd v258's example command
// lines are baked into the UKI unchanged. With systemd-stub 257 there is no URL: the entry is skipped.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { assertRootBooted, diagnosis, openLab, type Lab } from "./lib/lab.ts";
import { served } from "./lib/images.ts";

let lab: Lab;
before(async () => { lab = await openLab("uefi-http-boot"); });
after(async () => { await lab?.close(); });

const gptAutoExample = "rd.systemd.pull=raw,machine,verify=no,blockdev,bootorigin:rootdisk:image.raw.xz root=gpt-auto";
const tarExample = "rd.systemd.pull=tar,machine,verify=no,bootorigin:root:image.tar.xz root=bind:/run/machines/root";

for (const suite of ["trixie", "bookworm"] as const) {
  test(`systemd v258 example unchanged, stub 262: ${gptAutoExample} (${suite})`, async () => {
    const name = `v258-gpt-auto-bootorigin-${suite}`;
    const result = await lab.bootUefi({ name, suite, stub: "262", cmdline: gptAutoExample, images: { "image.raw.xz": served.gptXz } });
    assertRootBooted(result, "gpt");
    assert.ok(lab.server.log.some((r) => r.path === `uki-${name}/image.raw.xz` && r.complete),
      `bootorigin did not derive http://…/uki-${name}/image.raw.xz from the UKI's URL:\n${diagnosis(result)}`);
  });
}

test(`systemd v258 example unchanged, stub 262: ${tarExample} (trixie)`, async () => {
  const name = "v258-tar-bind-bootorigin-trixie";
  const result = await lab.bootUefi({ name, suite: "trixie", stub: "262", cmdline: tarExample, images: { "image.tar.xz": served.tarXz } });
  assertRootBooted(result, "tar-bootorigin");
  assert.ok(lab.server.log.some((r) => r.path === `uki-${name}/image.tar.xz` && r.complete), "the tar image was not downloaded");
});

test("systemd-stub 257 sets no boot URL: bootorigin is skipped gracefully (trixie)", async () => {
  const name = "bootorigin-stub257-skip-trixie";
  const result = await lab.bootUefi({
    name, suite: "trixie", stub: "257", images: { "image.raw.xz": served.gptXz },
    // Nothing provides the root then: give up on it after 15 s instead of 90.
    cmdline: `${gptAutoExample} systemd.default_device_timeout_sec=15`,
  });
  const skip = result.lines(/bootorigin.*not booted via UEFI HTTP boot|not scheduling download/);
  assert.ok(skip.length > 0, `no skip line for bootorigin:\n${diagnosis(result)}`);
  assert.ok(!lab.server.log.some((r) => r.path === `uki-${name}/image.raw.xz`), "the image was requested although no URL was known");
  assert.ok(lab.server.log.some((r) => r.path === `uki-${name}/boot.efi` && r.complete), "the firmware did not fetch the UKI");
  assert.equal(result.timedOut, false, `the boot hung instead of ending:\n${diagnosis(result)}`);
});
