// `npm run demo`: boots a QEMU guest whose initrd downloads its root file system with netimport,
// verifies it, attaches it and switches root into it, printing each step. Exits 0 when the root booted.
import { join } from "node:path";
import { ensureBaseInitrd, ensureNetimportLayer, e2eLayer, concatInitrd, mib } from "./lib/initrd.ts";
import { ensureImages, served } from "./lib/images.ts";
import { serveFolder } from "./lib/http-server.ts";
import { boot } from "./lib/qemu.ts";
import { cacheDir } from "./lib/paths.ts";
import { baseCmdline } from "./lib/lab.ts";
import { statSync } from "node:fs";

function step(n: number, text: string): void {
  console.log(`\n[${n}/6] ${text}`);
}

step(1, "Boot lab: a Debian trixie chroot (systemd 257), its kernel, and a dracut-built systemd initrd (cached in .cache/e2e)");
const base = await ensureBaseInitrd("trixie");
console.log(`      kernel ${base.kernel.version}; base initrd ${mib(statSync(base.path).size)}`);

step(2, "netimport's install tree (dist/tree from `npm run build`) becomes a second initrd layer");
const layer = await ensureNetimportLayer();
console.log(`      ${layer.path} (${mib(layer.bytes)}): /usr/lib/netimport/netimport and its generator link`);

step(3, "The root file system to boot: a tiny busybox system as an ext4 image, zstd-compressed");
const images = await ensureImages();
const sha256 = images.sha256(served.ext4Zst);
console.log(`      ${join(images.dir, served.ext4Zst)}\n      sha256 ${sha256}`);

step(4, "An HTTP server on 127.0.0.1 (the guest reaches it at 10.0.2.2 through QEMU's user network)");
const server = await serveFolder(images.dir);
const url = server.url(served.ext4Zst);
console.log(`      ${url}`);

const cmdline = `rd.systemd.import=raw,root,verify=sha256:${sha256}::${url}`;
step(5, `Boot: QEMU (TCG) with this on the kernel command line:\n      ${cmdline}\n      Lines from the serial console that involve netimport follow.`);
const work = join(cacheDir, "runs", "demo");
const initrd = concatInitrd([base.path, layer.path, e2eLayer(work)], join(work, "initrd.img"));
const result = await boot({
  kind: "direct", kernel: base.kernel.vmlinuz, initrd, cmdline: `${baseCmdline} ${cmdline}`, work, name: "demo",
  onLine: (line) => {
    if (/netimport|NETIMPORT-E2E|sysroot|Switch Root|Reached target.*Initrd/i.test(line)) console.log(`      | ${line.replace(/\x1b\[[0-9;:]*m/g, "")}`);
  },
});
await server.close();

step(6, "Result");
const booted = result.lines("NETIMPORT-E2E-ROOT-OK ext4-zst").length > 0;
const switchRoot = result.uptimeAt("NETIMPORT-E2E-MARK switch-root");
if (booted) {
  console.log(`      The downloaded image is the root file system: its /sbin/init ran and powered the guest off.`);
  if (switchRoot !== undefined) console.log(`      Switch-root ${switchRoot.toFixed(1)} s after the kernel started (TCG emulation, no KVM).`);
  console.log(`      Whole run ${result.seconds.toFixed(1)} s; serial log: ${result.logPath}`);
  process.exit(0);
}
console.log(`      The root did not boot${result.timedOut ? " (timed out)" : ""}; serial log: ${result.logPath}`);
for (const line of result.lines(/netimport: |NETIMPORT-E2E-(EMERGENCY|FAILED)/)) console.log(`      | ${line}`);
process.exit(1);
