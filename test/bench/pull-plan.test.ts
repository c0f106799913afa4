// The pure logic of the pull benchmark: which tools run together, in which order, with which command lines.
import assert from "node:assert/strict";
import { test } from "node:test";
import { FORMATS } from "./images.ts";
import { parseStatus, parseTime, runOrder, treeRss } from "./measure.ts";
import { DEFAULT_TOOLS, hangTimeout, OUTPUT_NAMES, planGroups, pullCommand, SYSTEMD_PULL, TOOLS, type Tool } from "./pull-bench.ts";

const HEX = "ab".repeat(32);
const input = { url: "http://127.0.0.1:8080/disk-1g-v1.raw.zst", dest: "/tmp/scratch", exe: "/opt/netimport", sha256: HEX };

test("run order alternates: as listed, reversed, as listed, …, so every two tools swap places each run", () => {
  assert.deepEqual(runOrder(["a", "b"], 0), ["a", "b"]);
  assert.deepEqual(runOrder(["a", "b"], 1), ["b", "a"]);
  assert.deepEqual(runOrder(["a", "b"], 2), ["a", "b"]);
  const tools = ["a", "b", "c", "d"];
  for (let run = 0; run < 5; run++) {
    const now = runOrder(tools, run);
    const next = runOrder(tools, run + 1);
    assert.deepEqual([...now].sort(), tools, "every tool runs once per run");
    for (const x of tools) {
      for (const y of tools) {
        if (x === y) continue;
        assert.notEqual(now.indexOf(x) < now.indexOf(y), next.indexOf(x) < next.indexOf(y), `${x} and ${y} swap after run ${run}`);
      }
    }
  }
});

test("GNU time output: CPU is user + system, RSS in bytes, a failed command's status line skipped", () => {
  assert.deepEqual(parseTime("1.20 0.50 0.25 1024\n"), { cpuSeconds: 0.75, maxRss: 1024 * 1024 });
  assert.deepEqual(parseTime("Command exited with non-zero status 1\n0.01 0.00 0.01 2048\n"), { cpuSeconds: 0.01, maxRss: 2048 * 1024 });
  assert.deepEqual(parseTime("Command terminated by signal 9\n3.00 1.00 2.00 10\n"), { cpuSeconds: 3, maxRss: 10240 });
  assert.equal(parseTime(""), undefined);
});

test("groups: netimport with curl | decoder and systemd-pull where it decodes; verifying pulls on raw and zst", () => {
  const groups = planGroups(FORMATS, DEFAULT_TOOLS, { systemdPullDecodes: { raw: true, gz: true, zst: false, xz: true, bz2: true }, lbzip2: true });
  assert.deepEqual(groups.map(({ id, tools }) => `${id}: ${tools.join(" ")}`), [
    "plain/raw: netimport curl systemd-pull",
    "plain/gz: netimport curl systemd-pull",
    "plain/zst: netimport curl",
    "plain/xz: netimport curl systemd-pull",
    "plain/bz2: netimport curl curl-lbzip2 systemd-pull",
    "verify/raw: netimport-sha256 netimport-checksum curl-sha256",
    "verify/zst: netimport-sha256 netimport-checksum curl-sha256",
  ]);
  const withoutLbzip2 = planGroups(["bz2"], DEFAULT_TOOLS, { systemdPullDecodes: {}, lbzip2: false });
  assert.deepEqual(withoutLbzip2.map(({ tools }) => tools), [["netimport", "curl", "systemd-pull"]]);
  const variants = planGroups(["raw", "xz", "bz2"], [...TOOLS], { systemdPullDecodes: {}, lbzip2: true });
  assert.deepEqual(variants.map(({ id, tools }) => `${id}: ${tools.join(" ")}`), [
    "plain/raw: netimport curl systemd-pull",
    "plain/xz: netimport netimport-js curl systemd-pull",
    "plain/bz2: netimport netimport-js netimport-bzip2 curl curl-lbzip2 systemd-pull",
    "verify/raw: netimport-sha256 netimport-checksum curl-sha256",
  ]);
  assert.deepEqual(planGroups(["raw"], ["netimport", "curl"], { systemdPullDecodes: {}, lbzip2: true }).map(({ tools }) => tools), [["netimport", "curl"]]);
});

test("every tool writes under the same scratch folder, and reads the same URL", () => {
  for (const tool of TOOLS) {
    for (const format of FORMATS) {
      if (tool === "curl-sha256" && !["raw", "zst"].includes(format)) {
        assert.throws(() => pullCommand(tool, format, input));
        continue;
      }
      const { argv, output } = pullCommand(tool, format, input);
      assert.ok(output.startsWith(`${input.dest}/`), `${tool} ${format} writes ${output}`);
      assert.ok(argv.includes(input.url), `${tool} ${format} reads the URL`);
      const script = argv.join(" ");
      assert.ok(script.includes(input.dest), `${tool} ${format}: ${script}`);
    }
  }
});

test("command lines per tool and format", () => {
  const command = (tool: Tool, format: (typeof FORMATS)[number]) => pullCommand(tool, format, input);
  assert.deepEqual(command("netimport", "zst").argv, ["/opt/netimport", "pull", "--verify=no", input.url, `/tmp/scratch/${OUTPUT_NAMES.netimport}`]);
  assert.deepEqual(command("netimport-sha256", "raw").argv.slice(0, 3), ["/opt/netimport", "pull", `--verify=sha256:${HEX}`]);
  assert.deepEqual(command("netimport-checksum", "raw").argv.slice(0, 3), ["/opt/netimport", "pull", "--verify=checksum"]);
  assert.deepEqual(command("curl", "raw").argv, ["curl", "-sS", "-o", `/tmp/scratch/${OUTPUT_NAMES.reference}`, input.url]);
  const pipeline = (tool: Tool, format: (typeof FORMATS)[number]) => {
    const { argv } = command(tool, format);
    assert.equal(argv[0], "bash");
    assert.match(argv[2]!, /^set -o pipefail; /);
    assert.deepEqual(argv.slice(3), ["bash", input.url, `/tmp/scratch/${OUTPUT_NAMES.reference}`]);
    return argv[2]!.replace("set -o pipefail; ", "");
  };
  assert.equal(pipeline("curl", "zst"), 'curl -sS "$1" | zstd -dc > "$2"');
  assert.equal(pipeline("curl", "gz"), 'curl -sS "$1" | gzip -dc > "$2"');
  assert.equal(pipeline("curl", "xz"), 'curl -sS "$1" | xz -dc > "$2"');
  assert.equal(pipeline("curl", "bz2"), 'curl -sS "$1" | bzip2 -dc > "$2"');
  assert.equal(pipeline("curl-lbzip2", "bz2"), 'curl -sS "$1" | lbzip2 -dc > "$2"');
  assert.equal(pipeline("curl-sha256", "raw"), 'curl -sS "$1" | tee "$2" | openssl dgst -sha256 > /dev/null');
  // The compressed bytes go to openssl and to zstd; no process substitution, whose process bash would not wait for.
  const zst = pipeline("curl-sha256", "zst");
  assert.match(zst, /curl -sS "\$1" \| tee \/dev\/fd\/3 \| zstd -dc > "\$2"/);
  assert.match(zst, /3>&1 \| openssl dgst -sha256/);
  assert.doesNotMatch(zst, />\(/);
  assert.deepEqual(command("systemd-pull", "xz"), {
    argv: [SYSTEMD_PULL, "raw", "--verify=no", "--image-root=/tmp/scratch/machines", input.url, "bench"],
    output: `/tmp/scratch/${OUTPUT_NAMES.systemdPull}`,
  });
  assert.deepEqual(command("netimport-js", "xz").argv.slice(0, 3), ["unshare", "-m", "--propagation"]);
});

test("a pull counts as hung after 10 min until the group has run, then after 5× its slowest run (at least 1 min)", () => {
  const sample = (seconds: number) => ({ seconds, cpuSeconds: seconds, maxRss: 0, treePeakRss: 0 });
  assert.equal(hangTimeout({ results: {} }), 600);
  assert.equal(hangTimeout({ results: { netimport: { samples: [] } } }), 600);
  assert.equal(hangTimeout({ results: { netimport: { samples: [sample(1.2)] }, curl: { samples: [sample(2)] } } }), 60);
  assert.equal(hangTimeout({ results: { netimport: { samples: [sample(30)] }, curl: { samples: [sample(41.1)] } } }), 206);
});

test("tree RSS: a child with its parent's name (forked, not yet exec'd) is not counted twice", () => {
  assert.deepEqual(parseStatus(9, "Name:\tlbzip2\nUmask:\t0022\nState:\tR (running)\nPPid:\t8\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\n"),
    { pid: 9, name: "lbzip2", ppid: 8, rss: 2048 * 1024 });
  assert.deepEqual(parseStatus(9, "Name:\tzombie\nPPid:\t8\n"), { pid: 9, name: "zombie", ppid: 8, rss: 0 });
  assert.equal(parseStatus(9, ""), undefined);
  const MiB = 1024 * 1024;
  assert.equal(treeRss([
    { pid: 10, name: "netimport", ppid: 1, rss: 120 * MiB },
    { pid: 11, name: "zstd", ppid: 10, rss: 6 * MiB },
    { pid: 12, name: "netimport", ppid: 10, rss: 120 * MiB }, // about to exec setfattr
  ]), 126 * MiB);
  assert.equal(treeRss([
    { pid: 20, name: "bash", ppid: 1, rss: 4 * MiB },
    { pid: 21, name: "curl", ppid: 20, rss: 10 * MiB },
    { pid: 22, name: "zstd", ppid: 20, rss: 6 * MiB },
  ]), 20 * MiB);
});
