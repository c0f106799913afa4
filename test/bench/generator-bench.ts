// Generator start-up cost against bare Node start-up, and the executable's size raw and compressed
// as an initrd would carry it.
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { measureSync, median } from "./measure.ts";
import { MB, mb, number, ratio, table, verdict, type Check, type Rendered } from "./report.ts";

const RATIO_TARGET = 1.2;
const COMPRESSED_TARGET = 30 * MB;

/** Four entries in the shapes the design documents: root raw image, machine tar, sysext, confext. */
export const GENERATOR_CMDLINE = [
  "console=ttyS0 quiet",
  "rd.systemd.import=raw,root:rootdisk:http://10.0.2.2:8080/images/debian-13.raw.zst",
  "rd.systemd.import=machine,tar,verify=no:builder:http://10.0.2.2:8080/images/builder.tar.xz",
  "rd.systemd.import=sysext,ro,verify=checksum::http://10.0.2.2:8080/ext/tools_1.2.raw",
  "rd.systemd.import=confext,raw,runtime=yes:site:https://example.org/confext/site.raw.gz",
  "root=/dev/disk/by-loop-ref/rootdisk.raw-part2",
].join(" ");

/** Counts the files under `dir`, recursively (the units and links the generator wrote). */
function countFiles(dir: string): number {
  let count = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    count += entry.isDirectory() ? countFiles(join(dir, entry.name)) : 1;
  }
  return count;
}

/** Bytes of `command args… -c file` output (zstd or xz). */
function compressedSize(file: string, command: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args, "-q", "-T2", "-c", file], { stdio: ["ignore", "pipe", "inherit"] });
    let size = 0;
    child.stdout.on("data", (chunk: Buffer) => { size += chunk.length; });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(size) : reject(new Error(`${command} ${args.join(" ")} exited with ${code}`))));
  });
}

type Sizes = { raw: number; zstd19: number; zstd15: number; xzDracut: number };

/** Compressing ~100 MB at -19 takes a while, so sizes are cached by the file's hash. */
async function compressedSizes(file: string, cacheDir: string): Promise<Sizes> {
  const sha256 = createHash("sha256").update(readFileSync(file)).digest("hex");
  const cacheFile = join(cacheDir, "compressed-sizes.json");
  let cache: Record<string, Sizes> = {};
  try { cache = JSON.parse(readFileSync(cacheFile, "utf8")) as Record<string, Sizes>; } catch { /* none yet */ }
  const cached = cache[sha256];
  if (cached?.xzDracut !== undefined) return cached;
  const sizes = {
    raw: statSync(file).size,
    zstd19: await compressedSize(file, "zstd", ["-19"]),
    zstd15: await compressedSize(file, "zstd", ["-15"]),
    // dracut's --xz
    xzDracut: await compressedSize(file, "xz", ["--check=crc32", "--lzma2=dict=1MiB"]),
  };
  writeFileSync(cacheFile, JSON.stringify({ ...cache, [sha256]: sizes }));
  return sizes;
}

/** The pinned Node binary stripped as the build strips it: the floor under the executable's size. */
async function strippedNodeSizes(node: string, cacheDir: string): Promise<Sizes> {
  const stripped = join(mkdtempSync(join(tmpdir(), "netimport-bench-node-")), "node");
  try {
    execFileSync("strip", ["--strip-all", "-o", stripped, realpathSync(node)]);
    return await compressedSizes(stripped, cacheDir);
  } finally {
    rmSync(dirname(stripped), { recursive: true, force: true });
  }
}

export type GeneratorData = {
  generatorSeconds: number[];
  nodeSeconds: number[];
  unitsWritten: number;
  executable: Sizes;
  node: Sizes;
  failures: string[];
};

export type GeneratorBenchOptions = { repo: string; exe: string; cacheDir: string; runs: number; log: (line: string) => void };

/**
 * Times `netimport generator` and `node -e 0` alternately, `runs` times each, and sizes the executable.
 * @example await benchGenerator({ repo: "/work/main", exe: "dist/netimport", cacheDir: ".cache/bench", runs: 30, log: console.log });
 */
export async function benchGenerator({ repo, exe, cacheDir, runs, log }: GeneratorBenchOptions): Promise<GeneratorData> {
  const node = join(repo, "node_modules", ".bin", "node");
  const failures: string[] = [];
  const scratch = mkdtempSync(join(tmpdir(), "netimport-bench-generator-"));
  const emptyRoot = join(scratch, "root");
  mkdirSync(emptyRoot);
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    SYSTEMD_PROC_CMDLINE: GENERATOR_CMDLINE,
    SYSTEMD_IN_INITRD: "1",
    // Keep the host's config files and EFI variables out of it.
    NETIMPORT_ROOT: emptyRoot,
    NETIMPORT_EFIVARFS: join(emptyRoot, "efivars"),
  };
  const generatorTimes: number[] = [];
  const nodeTimes: number[] = [];
  let unitsWritten = 0;
  log(`generator: ${runs} runs each of netimport generator and node -e 0 (after 3 warm-up runs each)`);
  try {
    for (let run = -3; run < runs; run++) {
      const out = join(scratch, `run${run + 3}`);
      const dirs = ["normal", "early", "late"].map((name) => join(out, name));
      for (const dir of dirs) mkdirSync(dir, { recursive: true });
      const generator = measureSync(exe, ["generator", ...dirs], env);
      if (generator.code !== 0) {
        failures.push(`netimport generator exited with ${generator.code}: ${generator.stderr.trim()}`);
        break;
      }
      const bare = measureSync(node, ["-e", "0"], env);
      if (run >= 0) {
        generatorTimes.push(generator.seconds);
        nodeTimes.push(bare.seconds);
      }
      if (run === -3) unitsWritten = countFiles(out);
      rmSync(out, { recursive: true, force: true });
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }

  log("generator: compressing the executable and the stripped Node binary (zstd -19, -15, xz; cached)");
  return {
    generatorSeconds: generatorTimes, nodeSeconds: nodeTimes, unitsWritten,
    executable: await compressedSizes(exe, cacheDir), node: await strippedNodeSizes(node, cacheDir), failures,
  };
}

/** The section's table, with PASS/MISS against the targets. */
export function renderGenerator(data: GeneratorData): Rendered {
  const checks: Check[] = [];
  const rows: string[][] = [];
  const generatorMs = median(data.generatorSeconds) * 1000;
  const nodeMs = median(data.nodeSeconds) * 1000;
  rows.push([`\`netimport generator\`, 4 \`rd.systemd.import=\` entries (median of ${data.generatorSeconds.length})`, `${number(generatorMs)} ms`, "", ""]);
  rows.push([`\`node -e 0\`, same pinned Node 24 (median of ${data.nodeSeconds.length})`, `${number(nodeMs)} ms`, "", ""]);
  if (data.generatorSeconds.length > 0) {
    const startupRatio = generatorMs / nodeMs;
    const pass = startupRatio <= RATIO_TARGET;
    rows.push(["generator / `node -e 0`", ratio(startupRatio), `≤ ${RATIO_TARGET}×`, verdict(pass)]);
    checks.push({ what: "generator start-up ratio", pass });
  }
  rows.push(["files the generator wrote (units, links)", String(data.unitsWritten), "", ""]);
  rows.push(["`dist/netimport`, stripped", mb(data.executable.raw, 2), "", ""]);
  for (const [label, size] of [["`zstd -19`", data.executable.zstd19], ["`zstd -15` (as dracut `--zstd`)", data.executable.zstd15]] as const) {
    const pass = size <= COMPRESSED_TARGET;
    rows.push([`\`dist/netimport\`, ${label}`, mb(size, 2), `≤ ${mb(COMPRESSED_TARGET)}`, verdict(pass)]);
    checks.push({ what: `executable size, ${label}`, pass });
  }
  rows.push(["for reference: the pinned Node binary alone, stripped", mb(data.node.raw, 2), "", ""]);
  rows.push(["… `zstd -19` / `zstd -15`", `${mb(data.node.zstd19, 2)} / ${mb(data.node.zstd15, 2)}`, "", ""]);
  rows.push(["for reference: `dist/netimport`, xz as dracut `--xz` (`--lzma2=dict=1MiB`)", mb(data.executable.xzDracut, 2), "", ""]);
  const markdown = `### Generator start-up and executable size\n\n${table(["measure", "value", "target", "result"], rows)}\n`;
  return { markdown, checks, failures: data.failures };
}
