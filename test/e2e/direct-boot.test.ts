// Direct kernel boots (QEMU -kernel/-initrd): netimport's own grammar and systemd v258's rd.systemd.pull=
// example with a loop reference, on trixie (systemd 257) and bookworm (systemd 252) initrds.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { assertRootBooted, diagnosis, openLab, type Lab } from "./lib/lab.ts";
import { served } from "./lib/images.ts";

let lab: Lab;
before(async () => { lab = await openLab("direct-boot"); });
after(async () => { await lab?.close(); });

for (const suite of ["trixie", "bookworm"] as const) {
  test(`raw ext4 .raw.zst as root, verify=sha256:<hex> (${suite})`, async () => {
    const hex = lab.images.sha256(served.ext4Zst);
    const result = await lab.bootDirect({
      name: `raw-zst-sha256-${suite}`, suite,
      cmdline: `rd.systemd.import=raw,root,verify=sha256:${hex}::${lab.server.url(served.ext4Zst)}`,
    });
    assertRootBooted(result, "ext4-zst");
    assert.ok(lab.server.log.some((r) => r.path === served.ext4Zst && r.complete), "the image was not downloaded whole");
  });
}

test("GPT disk (systemd-repart) .raw.xz as root, verify=signature (SHA256SUMS.gpg, keyring in the initrd)", async () => {
  const result = await lab.bootDirect({
    name: "gpt-xz-signature", suite: "trixie",
    cmdline: `rd.systemd.import=raw,root,verify=signature:root:${lab.server.url(served.gptXz)}`,
  });
  assertRootBooted(result, "gpt");
  const fetched = lab.server.log.filter((r) => r.path.startsWith("gpt/") && r.status < 300).map((r) => r.path);
  assert.ok(fetched.some((p) => /SHA256SUMS\.(gpg|asc)$|\.sha256\.(asc|gpg)$/.test(p)), `no signature fetched: ${fetched.join(", ")}`);
});

test("tar.gz as a writable root (bind mount)", async () => {
  const result = await lab.bootDirect({
    name: "tar-gz-rw", suite: "trixie",
    cmdline: `rd.systemd.import=tar,root,rw,verify=no::${lab.server.url(served.tarGz)}`,
  });
  assertRootBooted(result, "tar");
  assert.ok(result.lines("NETIMPORT-E2E-RW yes").length > 0, `the tar root is not writable:\n${diagnosis(result)}`);
});

for (const suite of ["trixie", "bookworm"] as const) {
  test(`systemd v258 example unchanged: rd.systemd.pull=raw,machine,verify=no,blockdev:image:URL root=/dev/disk/by-loop-ref/image.raw-part2 (${suite})`, async () => {
    const result = await lab.bootDirect({
      name: `v258-blockdev-loopref-${suite}`, suite,
      cmdline: `rd.systemd.pull=raw,machine,verify=no,blockdev:image:${lab.server.url(served.gptXz)} root=/dev/disk/by-loop-ref/image.raw-part2`,
    });
    assertRootBooted(result, "gpt");
  });
}

test("a system extension pulled at boot next to the root image", async () => {
  const result = await lab.bootDirect({
    name: "sysext-next-to-root", suite: "trixie",
    cmdline: `rd.systemd.import=raw,root,verify=no::${lab.server.url(served.ext4Zst)} ` +
      `rd.systemd.import=sysext,raw,verify=no:hello:${lab.server.url(served.sysext)}`,
  });
  assertRootBooted(result, "ext4-zst");
  assert.ok(lab.server.log.some((r) => r.path === served.sysext && r.complete), "the sysext was not downloaded");
  const listed = result.lines("NETIMPORT-E2E-EXTENSIONS").join(" ");
  assert.match(listed, /hello\.raw/, `the root does not see /run/extensions/hello.raw:\n${diagnosis(result)}`);
});
