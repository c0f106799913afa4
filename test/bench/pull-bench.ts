// Pull throughput: netimport against the curl | decoder pipeline and systemd-pull, each fetching the
// same image from the same nginx into the same tmpfs. Also what each one leaves on disk (sparseness).
import { mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { MIX } from "./disk-image.ts";
import { FORMATS, imageFile, type Format, type ImageSet } from "./images.ts";
import { measure, median, type Run } from "./measure.ts";
import { MB, mib, number, ratio, sizeLabel, table, verdict, type Check, type Rendered } from "./report.ts";
import type { Tmpfs } from "./tmpfs.ts";
import { inspectOutput } from "./verify-output.ts";

/**
 * `netimport-js`: netimport with the system's xz, bzip2 and lbzip2 hidden, as in an initrd that lacks
 * them; `netimport-bzip2`: with lbzip2 hidden, as in an initrd with bzip2 only.
 */
export const TOOLS = ["netimport", "curl", "systemd-pull", "netimport-js", "netimport-bzip2"] as const;
export type Tool = (typeof TOOLS)[number];
/** The netimport variants with decoders hidden: the formats they differ in, what they hide, their label. */
export const VARIANTS = {
  "netimport-js": { formats: ["xz", "bz2"], hide: ["/usr/bin/xz", "/usr/bin/bzip2", "/usr/bin/lbzip2"], label: "JS decoder" },
  "netimport-bzip2": { formats: ["bz2"], hide: ["/usr/bin/lbzip2"], label: "bzip2, no lbzip2" },
} as const satisfies Partial<Record<Tool, { formats: readonly Format[]; hide: readonly string[]; label: string }>>;
export type Variant = keyof typeof VARIANTS;
const isVariant = (tool: Tool): tool is Variant => tool in VARIANTS;
const isNetimport = (tool: Tool) => tool === "netimport" || isVariant(tool);
/** Whether `tool` runs on `format` (a variant only on the formats it differs in). */
export const runsOn = (tool: Tool, format: Format) => !isVariant(tool) || (VARIANTS[tool].formats as readonly Format[]).includes(format);
/** Hides `paths` (those that exist) from what follows, in a private mount namespace. */
const hiding = (paths: readonly string[]) => ["unshare", "-m", "--propagation", "private", "sh", "-c",
  `${paths.map((path) => `if [ -e ${path} ]; then mount --bind /dev/null ${path} || exit 1; fi; `).join("")}exec "$@"`, "sh"];

export const SYSTEMD_PULL = "/usr/lib/systemd/systemd-pull";
const DECODERS: Record<Exclude<Format, "raw">, string> = { gz: "gzip -dc", zst: "zstd -dc", xz: "xz -dc", bz2: "bzip2 -dc" };

const VS_SYSTEMD_PULL_TARGET = 1.0;
const VS_CURL_TARGET = 0.9;
const VS_CURL_FORMATS: readonly Format[] = ["raw", "gz", "zst"];

export type PullContext = { exe: string; baseUrl: string; scratch: Tmpfs; images: ImageSet; log: (line: string) => void };

export type Measurement = {
  seconds: number[];
  /** Peak RSS of the process tree per run in bytes (netimport only). */
  peakRss: number[];
  apparent?: number;
  allocated?: number;
  error?: string;
};

export type PullData = {
  imageSize: number;
  compressedSizes: Partial<Record<Format, number>>;
  /** Allocation of the cached source image, whose zero runs are holes: the sparse ideal. */
  sourceAllocated: number;
  /** Formats systemd-pull decodes (it stores what it does not recognise as is, and succeeds). */
  systemdPullDecodes: Partial<Record<Format, boolean>>;
  /** Keyed `tool/format`. */
  results: Record<string, Measurement>;
};

/** The command line each tool runs for one pull, and where its output lands. */
export function pullCommand(tool: Tool, format: Format, url: string, out: string, exe: string): { argv: string[]; output: string } {
  switch (tool) {
    case "netimport":
    case "netimport-js":
    case "netimport-bzip2": {
      const output = join(out, "netimport.raw");
      const argv = [exe, "pull", "--verify=no", url, output];
      return { argv: isVariant(tool) ? [...hiding(VARIANTS[tool].hide), ...argv] : argv, output };
    }
    case "curl": {
      const output = join(out, "curl.raw");
      if (format === "raw") return { argv: ["curl", "-sS", "-o", output, url], output };
      return {
        argv: ["bash", "-c", `set -o pipefail; curl -sS "$1" | ${DECODERS[format]} > "$2"`, "bash", url, output],
        output,
      };
    }
    case "systemd-pull": {
      const root = join(out, "machines");
      return {
        argv: [SYSTEMD_PULL, "raw", "--verify=no", `--image-root=${root}`, url, "bench"],
        output: join(root, "bench.raw"),
      };
    }
  }
}

export type PullOutcome = { run: Run; output: string; error?: string };

/**
 * One pull into an empty scratch tmpfs; `error` says why it did not produce a file.
 * @example const { run } = await pullOnce(context, "netimport", "zst", 1024 ** 3, { peakRss: true });
 */
export async function pullOnce(context: PullContext, tool: Tool, format: Format, size: number, options: { peakRss?: boolean } = {}): Promise<PullOutcome> {
  context.scratch.clear();
  context.scratch.prefault(size);
  mkdirSync(join(context.scratch.path, "machines"));
  const url = `${context.baseUrl}/${imageFile(size, format)}`;
  const { argv, output } = pullCommand(tool, format, url, context.scratch.path, context.exe);
  const run = await measure(argv[0]!, argv.slice(1), { peakRss: options.peakRss });
  let error: string | undefined;
  if (run.code !== 0) error = `${tool} ${format}: exited with ${run.code}: ${run.stderr.trim().split("\n").slice(-3).join(" / ")}`;
  else {
    try { statSync(output); } catch { error = `${tool} ${format}: exited 0 but wrote no ${output}`; }
  }
  return { run, output, error };
}

/** Pulls the small probe image in each format and checks whether systemd-pull decoded it. */
async function probeSystemdPull(context: PullContext, probeSize: number): Promise<Partial<Record<Format, boolean>>> {
  const decodes: Partial<Record<Format, boolean>> = {};
  for (const format of FORMATS) {
    const { output, error } = await pullOnce(context, "systemd-pull", format, probeSize);
    decodes[format] = !error && (await inspectOutput(output)).sha256 === context.images.sha256.get(probeSize);
  }
  return decodes;
}

export type PullBenchOptions = {
  size: number;
  probeSize: number;
  tools: readonly Tool[];
  formats: readonly Format[];
  /** Runs per (tool, format) for the fast formats, and for xz and bz2. */
  runs: number;
  slowRuns: number;
  /** Results of an earlier run, kept for the tools and formats not measured now. */
  previous?: PullData;
};

/**
 * Measures every (tool, format), interleaved round by round so drifting load hits all tools alike.
 * The first run of each is checked against the image's hash and its allocation recorded.
 * @example const data = await benchPull(context, { size: GiB, probeSize: MiB, tools: TOOLS, formats: FORMATS, runs: 3, slowRuns: 1 });
 */
export async function benchPull(context: PullContext, options: PullBenchOptions): Promise<PullData> {
  const { size, tools, formats } = options;
  const previous = options.previous?.imageSize === size ? options.previous : undefined;
  const data: PullData = {
    imageSize: size,
    compressedSizes: {},
    sourceAllocated: statSync(join(context.images.dir, imageFile(size, "raw"))).blocks * 512,
    systemdPullDecodes: previous?.systemdPullDecodes ?? {},
    results: { ...previous?.results },
  };
  for (const format of FORMATS) {
    try { data.compressedSizes[format] = statSync(join(context.images.dir, imageFile(size, format))).size; } catch { /* not built */ }
  }
  if (tools.includes("systemd-pull")) {
    context.log("pull: probing which formats systemd-pull decodes");
    data.systemdPullDecodes = await probeSystemdPull(context, options.probeSize);
  }
  for (const tool of tools) {
    for (const format of formats) {
      if (runsOn(tool, format)) data.results[`${tool}/${format}`] = { seconds: [], peakRss: [] };
    }
  }

  const runsFor = (format: Format) => (format === "xz" || format === "bz2" ? options.slowRuns : options.runs);
  const rounds = Math.max(...formats.map(runsFor));
  for (let round = 0; round < rounds; round++) {
    for (const format of formats) {
      if (round >= runsFor(format)) continue;
      for (const tool of tools) {
        if (tool === "systemd-pull" && data.systemdPullDecodes[format] === false) continue;
        if (!runsOn(tool, format)) continue;
        const result = data.results[`${tool}/${format}`]!;
        if (result.error) continue;
        // Every tool's memory is sampled, so the sampler's CPU weighs on all alike; netimport's is reported.
        const { run, output, error } = await pullOnce(context, tool, format, size, { peakRss: true });
        if (error) {
          result.error = error;
          context.log(`pull: FAILED ${error}`);
          continue;
        }
        if (round === 0) {
          const written = await inspectOutput(output);
          result.apparent = written.apparent;
          result.allocated = written.allocated;
          if (written.sha256 !== context.images.sha256.get(size)) {
            result.error = `${tool} ${format}: output differs from the image (${written.apparent} bytes)`;
            context.log(`pull: FAILED ${result.error}`);
            continue;
          }
        }
        result.seconds.push(run.seconds);
        if (isNetimport(tool) && run.treePeakRss !== undefined) result.peakRss.push(run.treePeakRss);
        context.log(`pull: ${tool} ${format} round ${round + 1}: ${number(size / MB / run.seconds)} MB/s`
          + (run.treePeakRss ? `, peak RSS ${mib(run.treePeakRss)}` : ""));
      }
    }
  }
  context.scratch.clear();
  return data;
}

/** MB/s of decoded output, median over the runs; NaN when there is none. */
export function throughput(data: PullData, tool: Tool, format: Format): number {
  const result = data.results[`${tool}/${format}`];
  if (!result || result.error || result.seconds.length === 0) return NaN;
  return data.imageSize / MB / median(result.seconds);
}

function cell(data: PullData, tool: Tool, format: Format): string {
  const result = data.results[`${tool}/${format}`];
  if (tool === "systemd-pull" && data.systemdPullDecodes[format] === false) return "unsupported";
  if (!result) return "not run";
  if (result.error) return "FAILED";
  const value = number(throughput(data, tool, format));
  if (result.seconds.length < 2) return value;
  // The range shows how much the machine's other load moved the runs.
  const rates = result.seconds.map((seconds) => data.imageSize / MB / seconds);
  return `${value} (${number(Math.min(...rates))}–${number(Math.max(...rates))})`;
}

/** The throughput table and the allocation table, with PASS/MISS against the targets. */
export function renderPull(data: PullData): Rendered {
  const checks: Check[] = [];
  const failures = Object.values(data.results).flatMap((result) => (result.error ? [result.error] : []));
  const rows: string[][] = [];
  const runs = (format: Format) => Math.max(...TOOLS.map((tool) => data.results[`${tool}/${format}`]?.seconds.length ?? 0));
  /** netimport (or its JS variant) against another tool: the ratio and, when `counts`, the verdict. */
  const versus = (ours: Tool, format: Format, tool: Tool, target: number, applies: boolean, counts: boolean): [string, string] => {
    if (!applies) return ["–", "–"];
    const value = throughput(data, ours, format) / throughput(data, tool, format);
    if (!Number.isFinite(value)) return ["–", "not measured"];
    const pass = value >= target;
    if (counts) checks.push({ what: `pull ${format}: ${ours} vs ${tool}`, pass });
    return [ratio(value), `≥ ${target}×${counts ? ` ${verdict(pass)}` : " (info)"}`];
  };
  const variants: [Tool, Format][] = [
    ...FORMATS.map((format): [Tool, Format] => ["netimport", format]),
    ...(Object.keys(VARIANTS) as Variant[]).flatMap((tool) => VARIANTS[tool].formats.map((format): [Tool, Format] => [tool, format])),
  ];
  for (const [ours, format] of variants) {
    if (!data.results[`${ours}/${format}`] && !(ours === "netimport" && TOOLS.some((tool) => data.results[`${tool}/${format}`]))) continue;
    const compressed = data.compressedSizes[format];
    const name = `\`.${format === "raw" ? "raw" : `raw.${format}`}\``;
    rows.push([
      isVariant(ours) ? `${name}, ${VARIANTS[ours].label}` : name,
      compressed === undefined ? "–" : mib(compressed),
      String(runs(format)),
      cell(data, ours, format),
      cell(data, "curl", format),
      cell(data, "systemd-pull", format),
      ...versus(ours, format, "curl", VS_CURL_TARGET, VS_CURL_FORMATS.includes(format), true),
      ...versus(ours, format, "systemd-pull", VS_SYSTEMD_PULL_TARGET, data.systemdPullDecodes[format] !== false, ours === "netimport"),
    ]);
  }
  const size = sizeLabel(data.imageSize);
  const throughputTable = table(
    ["image", "served size", "runs", "netimport MB/s", "curl \\| decoder MB/s", "systemd-pull MB/s", "netimport / curl", "target", "netimport / systemd-pull", "target"],
    rows,
  );

  const blockRows: string[][] = [["source image (zero runs as holes: the ideal)", ...FORMATS.map(() => allocation(data.sourceAllocated, data.imageSize))]];
  for (const tool of TOOLS) {
    const label = isVariant(tool) ? `netimport, ${VARIANTS[tool].label}` : tool === "curl" ? "curl \\| decoder" : tool;
    blockRows.push([label, ...FORMATS.map((format) => {
      const result = data.results[`${tool}/${format}`];
      if (tool === "systemd-pull" && data.systemdPullDecodes[format] === false) return "unsupported";
      if (!result || result.allocated === undefined || result.apparent === undefined) return "–";
      return allocation(result.allocated, result.apparent);
    })]);
  }
  const blocksTable = table(["written by", ...FORMATS.map((format) => `\`${format}\``)], blockRows);

  const markdown = `### Pull throughput

A ${size} disk-like image (${describeMix()}, in extents of 4 KiB–4 MiB),
served by nginx on 127.0.0.1, written to a tmpfs; MB/s (10^6 bytes) of decoded image per second of
wall time, median of the runs (lowest–highest in brackets). Compressed with \`gzip -6\`, \`zstd -3\`, \`xz -6\`, \`bzip2 -9\`.
\`netimport pull --verify=no URL DEST\` (it computes the SHA-256 of what it downloads all the same);
\`curl -sS URL | DECODER -dc > FILE\` (\`curl -o\` for raw: no hash); \`systemd-pull raw --verify=no
--image-root=TMPFS URL NAME\` (systemd 252; it also copies its download cache
file to NAME.raw, as it always does). netimport decodes gz with Node's zlib, lets the system's
\`zstd -d --sparse\` and \`xz -dc -T0\` write zst and xz images straight into the file, and pipes bz2
through \`lbzip2 -dc\`, which decodes any bzip2 file on all cores (these binaries are installed here;
without lbzip2: \`bzip2 -dc\`, the "bzip2, no lbzip2" row; without the others: Node's zlib for zstd,
xz-embedded and seek-bzip). The xz files are single-block (\`xz -T1\`), so \`-T0\` does not
parallelise them. Before each run the tmpfs is warmed by writing and deleting a file of the image's
size: on this VM a guest page touched for the first time costs a host fault, and without the warm-up
whichever tool ran after another one's memory was freed lost up to half its speed. The "JS decoder"
rows hide \`/usr/bin/xz\`, \`/usr/bin/bzip2\` and \`/usr/bin/lbzip2\` (bind-mounted /dev/null in a private
mount namespace), as in an initrd without them; theirs and the bzip2 row's systemd-pull ratios are for
information, not targets.

${throughputTable}

### Space the written image takes

Allocated (\`stat -c %b*%B\`) of the ${size} written image, and allocated / apparent size.

${blocksTable}
`;
  return { markdown, checks, failures };
}

function allocation(allocated: number, apparent: number): string {
  return `${mib(allocated)} (${(allocated / apparent).toFixed(2)})`;
}

/** "40% zero runs, 20% random, …" */
export function describeMix(): string {
  const names = { zero: "zero runs", random: "random", text: "text", binary: "binary-like" } as const;
  return (Object.keys(MIX) as (keyof typeof MIX)[]).map((kind) => `${Math.round(MIX[kind] * 100)}% ${names[kind]}`).join(", ");
}
