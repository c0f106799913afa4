// Pulls of a 1 GiB image, measured fairly: netimport against the reference pipelines (curl | decoder,
// curl | tee | openssl) and systemd-pull, all fetching the same file from the same nginx and writing
// into the same tmpfs. The tools of a row run as a pair (or a small group): on run i each runs once,
// back to back, in an order that alternates from run to run (A B, B A, …), each on a freshly emptied
// destination. Wall time, CPU seconds (GNU time, the whole process tree) and peak RSS for each.
import { existsSync, mkdirSync, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { MIX } from "./disk-image.ts";
import { FORMATS, imageFile, type Format, type ImageSet } from "./images.ts";
import { measure, median, runOrder, type Run } from "./measure.ts";
import { mib, ratio, sizeLabel, table, verdict, type Check, type Rendered } from "./report.ts";
import type { Tmpfs } from "./tmpfs.ts";
import { inspectOutput } from "./verify-output.ts";

/**
 * The tools. `netimport`: `--verify=no`; `netimport-sha256` and `netimport-checksum`: `--verify=sha256:HEX`
 * and `--verify=checksum`; `curl`: `curl -o` (raw) or `curl | DECODER -dc`; `curl-lbzip2`: `curl | lbzip2
 * -dc` (bz2, when installed); `curl-sha256`: the equal-work pipeline of a verifying pull, `curl | tee
 * FILE | openssl dgst -sha256` (raw) or hashing the compressed bytes with openssl while zstd decodes
 * them (zst). `netimport-js` and `netimport-bzip2` (only when asked for) hide the system's decoders,
 * as in an initrd without them.
 */
export const TOOLS = [
  "netimport", "curl", "curl-lbzip2", "systemd-pull",
  "netimport-sha256", "netimport-checksum", "curl-sha256",
  "netimport-js", "netimport-bzip2",
] as const;
export type Tool = (typeof TOOLS)[number];
/** The netimport variants with decoders hidden: the formats they differ in, what they hide, their label. */
export const VARIANTS = {
  "netimport-js": { formats: ["xz", "bz2"], hide: ["/usr/bin/xz", "/usr/bin/bzip2", "/usr/bin/lbzip2"], label: "JS decoder" },
  "netimport-bzip2": { formats: ["bz2"], hide: ["/usr/bin/lbzip2"], label: "bzip2, no lbzip2" },
} as const satisfies Partial<Record<Tool, { formats: readonly Format[]; hide: readonly string[]; label: string }>>;
export type Variant = keyof typeof VARIANTS;
const isVariant = (tool: Tool): tool is Variant => tool in VARIANTS;
/** What runs unless `--tools` says otherwise: everything but the variants with hidden decoders. */
export const DEFAULT_TOOLS: readonly Tool[] = TOOLS.filter((tool) => !isVariant(tool));
/** Hides `paths` (those that exist) from what follows, in a private mount namespace. */
const hiding = (paths: readonly string[]) => ["unshare", "-m", "--propagation", "private", "sh", "-c",
  `${paths.map((path) => `if [ -e ${path} ]; then mount --bind /dev/null ${path} || exit 1; fi; `).join("")}exec "$@"`, "sh"];

export const SYSTEMD_PULL = "/usr/lib/systemd/systemd-pull";
const DECODERS: Record<Exclude<Format, "raw">, string> = { gz: "gzip -dc", zst: "zstd -dc", xz: "xz -dc", bz2: "bzip2 -dc" };
/** The formats the verifying pulls are measured on. */
export const VERIFY_FORMATS: readonly Format[] = ["raw", "zst"];

/** Where each tool writes, under the one scratch tmpfs every tool shares. */
export const OUTPUT_NAMES = { netimport: "netimport.raw", reference: "reference.raw", systemdPull: "machines/bench.raw" } as const;

/** A target on a ratio: speed is reference wall / ours, CPU is ours / reference CPU seconds. */
export type Target = { metric: "speed" | "cpu"; at: "least" | "most"; value: number };
const speedAtLeast = (value: number): Target => ({ metric: "speed", at: "least", value });
const cpuAtMost = (value: number): Target => ({ metric: "cpu", at: "most", value });

/** Whether `value` meets `target`. */
export function meets(value: number, target: Target): boolean {
  return target.at === "least" ? value >= target.value : value <= target.value;
}

/** "≥ 0.9×" */
export function targetLabel(target: Target): string {
  return `${target.at === "least" ? "≥" : "≤"} ${target.value}×`;
}

/** One comparison: `ours` against `reference`, on the metrics shown, each with a target or for information. */
export type Comparison = {
  section: Section;
  ours: Tool;
  reference: Tool;
  metrics: { metric: Target["metric"]; target?: Target }[];
};
export type Section = "curl" | "verify" | "systemd-pull";

/** The targets of issue 11: what each comparison is held to (no entry: for information). */
const CURL_TARGETS: Partial<Record<Format, Target[]>> = { raw: [speedAtLeast(0.9), cpuAtMost(1.5)], zst: [speedAtLeast(0.9), cpuAtMost(1.5)] };
const SYSTEMD_PULL_TARGETS: Partial<Record<Format, Target>> = { raw: speedAtLeast(1.5), gz: speedAtLeast(1.5), xz: speedAtLeast(1.2), bz2: speedAtLeast(1.2) };
const VERIFY_TARGET = speedAtLeast(1.0);

/** A row of tools measured together, paired run by run. */
export type Group = { id: string; kind: "plain" | "verify"; format: Format; tools: Tool[] };

export type PlanEnvironment = { systemdPullDecodes: Partial<Record<Format, boolean>>; lbzip2: boolean };

/**
 * The groups to measure for `formats` with the tools selected: per format, netimport `--verify=no`
 * with curl | decoder (and curl | lbzip2 for bz2) and systemd-pull where it decodes the format; for
 * raw and zst also the verifying pulls with the equal-work pipeline.
 * @example planGroups(["raw"], DEFAULT_TOOLS, { systemdPullDecodes: { raw: true }, lbzip2: true })
 */
export function planGroups(formats: readonly Format[], tools: readonly Tool[], environment: PlanEnvironment): Group[] {
  const groups: Group[] = [];
  const selected = (candidates: (Tool | false)[]) => candidates.filter((tool): tool is Tool => tool !== false && tools.includes(tool));
  for (const format of FORMATS.filter((format) => formats.includes(format))) {
    const plain = selected([
      "netimport",
      ...(Object.keys(VARIANTS) as Variant[]).map((variant) => runsOn(variant, format) && variant),
      "curl",
      format === "bz2" && environment.lbzip2 && "curl-lbzip2",
      environment.systemdPullDecodes[format] !== false && "systemd-pull",
    ]);
    if (plain.length) groups.push({ id: `plain/${format}`, kind: "plain", format, tools: plain });
  }
  for (const format of VERIFY_FORMATS.filter((format) => formats.includes(format))) {
    const verifying = selected(["netimport-sha256", "netimport-checksum", "curl-sha256"]);
    if (verifying.length) groups.push({ id: `verify/${format}`, kind: "verify", format, tools: verifying });
  }
  return groups;
}

/** Whether `tool` runs on `format` (a variant only on the formats it differs in). */
export function runsOn(tool: Tool, format: Format): boolean {
  if (isVariant(tool)) return (VARIANTS[tool].formats as readonly Format[]).includes(format);
  if (tool === "curl-lbzip2") return format === "bz2";
  if (tool === "netimport-sha256" || tool === "netimport-checksum" || tool === "curl-sha256") return VERIFY_FORMATS.includes(format);
  return true;
}

/** The comparisons a group's measurements are rendered as, with their targets. */
export function comparisons(group: Pick<Group, "kind" | "format" | "tools">): Comparison[] {
  const { kind, format, tools } = group;
  const result: Comparison[] = [];
  const add = (section: Section, ours: Tool, reference: Tool, targets: Target[], infoMetrics: Target["metric"][] = []) => {
    if (!tools.includes(ours) || !tools.includes(reference)) return;
    const metrics: Comparison["metrics"] = [];
    for (const metric of ["speed", "cpu"] as const) {
      const target = targets.find((candidate) => candidate.metric === metric);
      if (target) metrics.push({ metric, target });
      else if (infoMetrics.includes(metric)) metrics.push({ metric });
    }
    result.push({ section, ours, reference, metrics });
  };
  if (kind === "verify") {
    add("verify", "netimport-sha256", "curl-sha256", [VERIFY_TARGET], ["cpu"]);
    add("verify", "netimport-checksum", "curl-sha256", [VERIFY_TARGET], ["cpu"]);
    return result;
  }
  add("curl", "netimport", "curl", CURL_TARGETS[format] ?? [], ["speed", "cpu"]);
  add("curl", "netimport", "curl-lbzip2", [], ["speed", "cpu"]);
  const systemdPull = SYSTEMD_PULL_TARGETS[format];
  add("systemd-pull", "netimport", "systemd-pull", systemdPull ? [systemdPull] : [], ["speed", "cpu"]);
  for (const variant of Object.keys(VARIANTS) as Variant[]) {
    add("curl", variant, "curl", [], ["speed", "cpu"]);
    add("systemd-pull", variant, "systemd-pull", [], ["speed", "cpu"]);
  }
  return result;
}

export type CommandInput = {
  /** The image's URL. */
  url: string;
  /** The scratch folder every tool writes into (the same tmpfs for all). */
  dest: string;
  /** The netimport executable. */
  exe: string;
  /** sha256 of the file as served, for `--verify=sha256:`. */
  sha256: string;
};

/**
 * The command line each tool runs for one pull, and where its output lands: all under `dest`.
 * @example pullCommand("curl", "zst", { url, dest: "/mnt/scratch", exe: "dist/netimport", sha256 })
 */
export function pullCommand(tool: Tool, format: Format, input: CommandInput): { argv: string[]; output: string } {
  const { url, dest, exe, sha256 } = input;
  const pipeline = (script: string, output: string) => ({
    argv: ["bash", "-c", `set -o pipefail; ${script}`, "bash", url, output],
    output,
  });
  switch (tool) {
    case "netimport":
    case "netimport-sha256":
    case "netimport-checksum":
    case "netimport-js":
    case "netimport-bzip2": {
      const output = join(dest, OUTPUT_NAMES.netimport);
      const verify = tool === "netimport-sha256" ? `sha256:${sha256}` : tool === "netimport-checksum" ? "checksum" : "no";
      const argv = [exe, "pull", `--verify=${verify}`, url, output];
      return { argv: isVariant(tool) ? [...hiding(VARIANTS[tool].hide), ...argv] : argv, output };
    }
    case "curl": {
      const output = join(dest, OUTPUT_NAMES.reference);
      if (format === "raw") return { argv: ["curl", "-sS", "-o", output, url], output };
      return pipeline(`curl -sS "$1" | ${DECODERS[format]} > "$2"`, output);
    }
    case "curl-lbzip2":
      return pipeline('curl -sS "$1" | lbzip2 -dc > "$2"', join(dest, OUTPUT_NAMES.reference));
    case "curl-sha256": {
      const output = join(dest, OUTPUT_NAMES.reference);
      if (format === "raw") return pipeline('curl -sS "$1" | tee "$2" | openssl dgst -sha256 > /dev/null', output);
      if (format !== "zst") throw new Error(`no verifying reference pipeline for ${format}`);
      // tee hands the compressed bytes to openssl (fd 3, the outer pipe) and to zstd; every process
      // is a pipeline member bash waits for, so GNU time counts them all (a >(…) would not be waited for).
      return pipeline('{ curl -sS "$1" | tee /dev/fd/3 | zstd -dc > "$2"; } 3>&1 | openssl dgst -sha256 > /dev/null', output);
    }
    case "systemd-pull": {
      const root = join(dest, "machines");
      return {
        argv: [SYSTEMD_PULL, "raw", "--verify=no", `--image-root=${root}`, url, "bench"],
        output: join(dest, OUTPUT_NAMES.systemdPull),
      };
    }
  }
}

/** How the markdown names each tool's command. */
export function commandLabel(tool: Tool, format: Format): string {
  switch (tool) {
    case "netimport": return "netimport `--verify=no`";
    case "netimport-sha256": return "netimport `--verify=sha256:HEX`";
    case "netimport-checksum": return "netimport `--verify=checksum`";
    case "netimport-js":
    case "netimport-bzip2": return `netimport \`--verify=no\`, ${VARIANTS[tool].label}`;
    case "curl": return format === "raw" ? "`curl -o FILE`" : `\`curl \\| ${DECODERS[format]} > FILE\``;
    case "curl-lbzip2": return "`curl \\| lbzip2 -dc > FILE`";
    case "curl-sha256": return format === "raw"
      ? "`curl \\| tee FILE \\| openssl dgst -sha256`"
      : "`curl \\| tee /dev/fd/3 \\| zstd -dc > FILE`, fd 3 `\\| openssl dgst -sha256`";
    case "systemd-pull": return "`systemd-pull raw --verify=no`";
  }
}

/** The rows of the allocation table. */
function spaceLabel(tool: Tool): string {
  switch (tool) {
    case "curl": return "`curl -o FILE` (raw), `curl \\| DECODER -dc > FILE`";
    case "curl-sha256": return "`curl \\| tee FILE \\| openssl …` (raw), `… \\| zstd -dc > FILE` (zst)";
    default: return commandLabel(tool, "raw");
  }
}

/** Short names for ratios against several references. */
function shortLabel(tool: Tool): string {
  return tool === "curl-lbzip2" ? "lbzip2" : tool === "curl" ? "curl" : tool;
}

export type PullContext = { exe: string; baseUrl: string; scratch: Tmpfs; images: ImageSet; log: (line: string) => void };

/** One run of one tool. */
export type Sample = {
  seconds: number;
  cpuSeconds: number;
  /** GNU time's maximum RSS: the largest single process. */
  maxRss: number;
  /** The process tree's summed RSS, sampled. */
  treePeakRss: number;
};

export type ToolResult = {
  /** Sample i is run i (a tool that fails is not run again, so the indices stay paired). */
  samples: Sample[];
  /** Of the first run's output. */
  apparent?: number;
  allocated?: number;
  error?: string;
  /** Runs killed as hung and run again. */
  hangs?: number;
};

export type GroupData = Group & {
  /** The order the tools ran in, per run. */
  orders: Tool[][];
  results: Partial<Record<Tool, ToolResult>>;
  /** When this group was measured (ISO). */
  measuredAt: string;
};

export type PullData = {
  imageSize: number;
  compressedSizes: Partial<Record<Format, number>>;
  /** Allocation of the cached source image, whose zero runs are holes: the sparse ideal. */
  sourceAllocated: number;
  /** Formats systemd-pull decodes (it stores what it does not recognise as is, and succeeds). */
  systemdPullDecodes: Partial<Record<Format, boolean>>;
  lbzip2: boolean;
  /** Keyed by group id. */
  groups: Record<string, GroupData>;
};

export type PullOutcome = { run: Run; output: string; error?: string };

/** Seconds a pull of a benchmark image may take before it counts as hung (the slowest take ~1 min). */
export const RUN_TIMEOUT = 600;
/** The same for systemd-pull's 1 MiB probes; a hung probe is tried again. */
const PROBE_TIMEOUT = 30;
const PROBE_ATTEMPTS = 3;

/**
 * One pull into the emptied scratch tmpfs, after writing and deleting `prefault` bytes there (see
 * tmpfs.ts); `error` says why it did not produce a file.
 * @example const { run } = await pullOnce(context, "netimport", "zst", 1024 ** 3, 1024 ** 3);
 */
export async function pullOnce(context: PullContext, tool: Tool, format: Format, size: number, prefault: number, timeoutSeconds = RUN_TIMEOUT): Promise<PullOutcome> {
  context.scratch.clear();
  context.scratch.prefault(prefault);
  mkdirSync(join(context.scratch.path, "machines"));
  const file = imageFile(size, format);
  const url = `${context.baseUrl}/${file}`;
  const { argv, output } = pullCommand(tool, format, {
    url, dest: context.scratch.path, exe: context.exe, sha256: context.images.served.get(file) ?? "",
  });
  // Every tool's tree is sampled, so the sampler's CPU weighs on all alike.
  const run = await measure(argv[0]!, argv.slice(1), { treeRss: true, timeoutSeconds });
  let error: string | undefined;
  if (run.timedOut) error = `${tool} ${format}: killed after ${timeoutSeconds} s without finishing: ${run.stderr.trim().split("\n").slice(-3).join(" / ")}`;
  else if (run.code !== 0) error = `${tool} ${format}: exited with ${run.code}: ${run.stderr.trim().split("\n").slice(-3).join(" / ")}`;
  else {
    try { statSync(output); } catch { error = `${tool} ${format}: exited 0 but wrote no ${output}`; }
  }
  return { run, output, error };
}

/** Pulls the small probe image in each format and checks whether systemd-pull decoded it. */
async function probeSystemdPull(context: PullContext, probeSize: number): Promise<Partial<Record<Format, boolean>>> {
  const decodes: Partial<Record<Format, boolean>> = {};
  for (const format of FORMATS) {
    for (let attempt = 1; ; attempt++) {
      const { run, output, error } = await pullOnce(context, "systemd-pull", format, probeSize, 0, PROBE_TIMEOUT);
      if (run.timedOut && attempt < PROBE_ATTEMPTS) {
        context.log(`pull: systemd-pull hung on the ${format} probe (attempt ${attempt}), trying again`);
        continue;
      }
      if (run.timedOut) throw new Error(`systemd-pull hung on the ${format} probe ${PROBE_ATTEMPTS} times`);
      decodes[format] = !error && (await inspectOutput(output)).sha256 === context.images.sha256.get(probeSize);
      break;
    }
  }
  return decodes;
}

/** Whether `command` is on PATH. */
export function installed(command: string): boolean {
  return (process.env.PATH ?? "/usr/bin:/bin").split(delimiter).some((dir) => dir && existsSync(join(dir, command)));
}

export type PullBenchOptions = {
  size: number;
  probeSize: number;
  tools: readonly Tool[];
  formats: readonly Format[];
  /** Runs per group, by format. */
  runs: Record<Format, number>;
  /** Results of an earlier run, kept for the groups not measured now. */
  previous?: PullData;
};

const MAX_HANGS = 2;
/**
 * How long a pull may take before it counts as hung: RUN_TIMEOUT until the group has a measurement,
 * then 5× its slowest run so far (at least a minute), so a hang costs little of the run's time.
 */
export function hangTimeout(group: Pick<GroupData, "results">): number {
  const seen = Object.values(group.results).flatMap((result) => result?.samples.map((sample) => sample.seconds) ?? []);
  return seen.length ? Math.max(60, Math.ceil(5 * Math.max(...seen))) : RUN_TIMEOUT;
}

/**
 * Measures every group: run i runs each of its tools once, in runOrder(tools, i). The first run of
 * each tool is checked against the image's hash and its allocation recorded.
 * @example const data = await benchPull(context, { size: GiB, probeSize: MiB, tools: DEFAULT_TOOLS, formats: FORMATS, runs: { raw: 5, gz: 5, zst: 5, xz: 3, bz2: 2 } });
 */
export async function benchPull(context: PullContext, options: PullBenchOptions): Promise<PullData> {
  const { size, tools, formats } = options;
  const previous = options.previous?.imageSize === size ? options.previous : undefined;
  const data: PullData = {
    imageSize: size,
    compressedSizes: {},
    sourceAllocated: statSync(join(context.images.dir, imageFile(size, "raw"))).blocks * 512,
    systemdPullDecodes: previous?.systemdPullDecodes ?? {},
    lbzip2: installed("lbzip2"),
    groups: { ...previous?.groups },
  };
  for (const format of FORMATS) {
    try { data.compressedSizes[format] = statSync(join(context.images.dir, imageFile(size, format))).size; } catch { /* not built */ }
  }
  if (tools.includes("systemd-pull")) {
    context.log("pull: probing which formats systemd-pull decodes");
    data.systemdPullDecodes = await probeSystemdPull(context, options.probeSize);
  }
  const groups = planGroups(formats, tools, data);
  for (const group of groups) {
    const runs = options.runs[group.format];
    const prefault = size;
    const result: GroupData = { ...group, orders: [], results: {}, measuredAt: new Date().toISOString() };
    data.groups[group.id] = result;
    for (const tool of group.tools) result.results[tool] = { samples: [] };
    context.log(`pull: ${group.id}: ${runs} run(s) of ${group.tools.join(", ")}`);
    for (let index = 0; index < runs; index++) {
      const order = runOrder(group.tools, index).filter((tool) => !result.results[tool]!.error);
      result.orders.push(order);
      for (const tool of order) {
        const toolResult = result.results[tool]!;
        let outcome = await pullOnce(context, tool, group.format, size, prefault, hangTimeout(result));
        // A tool that hangs (systemd-pull 252 does, now and then) is killed and run again, at most twice in a group.
        while (outcome.run.timedOut && (toolResult.hangs ?? 0) < MAX_HANGS) {
          toolResult.hangs = (toolResult.hangs ?? 0) + 1;
          context.log(`pull: ${tool} ${group.format} hung (${outcome.error}); running it again`);
          outcome = await pullOnce(context, tool, group.format, size, prefault, hangTimeout(result));
        }
        const { run, output, error } = outcome;
        if (error) {
          toolResult.error = error;
          context.log(`pull: FAILED ${error}`);
          continue;
        }
        if (index === 0) {
          const written = await inspectOutput(output);
          toolResult.apparent = written.apparent;
          toolResult.allocated = written.allocated;
          if (written.sha256 !== context.images.sha256.get(size)) {
            toolResult.error = `${tool} ${group.format}: output differs from the image (${written.apparent} bytes)`;
            context.log(`pull: FAILED ${toolResult.error}`);
            continue;
          }
        }
        toolResult.samples.push({ seconds: run.seconds, cpuSeconds: run.cpuSeconds, maxRss: run.maxRss, treePeakRss: run.treePeakRss ?? NaN });
        context.log(`pull: ${group.id} run ${index + 1}/${runs} ${tool}: ${run.seconds.toFixed(2)} s, CPU ${run.cpuSeconds.toFixed(2)} s, ` +
          `RSS ${mib(run.treePeakRss ?? NaN)} (largest process ${mib(run.maxRss)})`);
      }
    }
  }
  context.scratch.clear();
  return data;
}

/** Median and range of `values`, or NaN when empty. */
export function spread(values: number[]): { median: number; min: number; max: number } {
  return { median: median(values), min: values.length ? Math.min(...values) : NaN, max: values.length ? Math.max(...values) : NaN };
}

/**
 * The per-run ratios of `metric` between two tools of a group, over the runs both completed:
 * speed = reference wall / ours, CPU = ours / reference CPU seconds.
 * @example pairedRatios(group, "netimport", "curl", "speed") // [0.95, 0.91, …]
 */
export function pairedRatios(group: Pick<GroupData, "results">, ours: Tool, reference: Tool, metric: Target["metric"]): number[] {
  const a = group.results[ours];
  const b = group.results[reference];
  if (!a || !b || a.error || b.error) return [];
  const ratios: number[] = [];
  for (let index = 0; index < Math.min(a.samples.length, b.samples.length); index++) {
    const mine = a.samples[index]!;
    const theirs = b.samples[index]!;
    ratios.push(metric === "speed" ? theirs.seconds / mine.seconds : mine.cpuSeconds / theirs.cpuSeconds);
  }
  return ratios;
}

const decimals = (value: number) => (Number.isFinite(value) ? value.toFixed(2) : "–");

function range(values: number[]): string {
  const { median: middle, min, max } = spread(values);
  if (values.length === 0) return "–";
  return values.length < 2 ? decimals(middle) : `${decimals(middle)} (${decimals(min)}–${decimals(max)})`;
}

const formatName = (format: Format) => `\`.${format === "raw" ? "raw" : `raw.${format}`}\``;

/** The three pull tables (against curl, verifying, against systemd-pull) and the allocation table. */
export function renderPull(data: PullData): Rendered {
  const checks: Check[] = [];
  const failures: string[] = [];
  const groups = Object.values(data.groups).sort((a, b) => FORMATS.indexOf(a.format) - FORMATS.indexOf(b.format));
  for (const group of groups) {
    for (const result of Object.values(group.results)) if (result?.error) failures.push(result.error);
  }

  const sectionTable = (section: Section): string => {
    const rows: string[][] = [];
    for (const group of groups) {
      const mine = comparisons(group).filter((comparison) => comparison.section === section);
      if (mine.length === 0) continue;
      const shown = [...new Set(mine.flatMap(({ ours, reference }) => [ours, reference]))];
      for (const tool of group.tools.filter((candidate) => shown.includes(candidate))) {
        const result = group.results[tool];
        const own = mine.filter((comparison) => comparison.ours === tool);
        const ratios: string[] = [];
        const targets: string[] = [];
        const verdicts: string[] = [];
        for (const comparison of own) {
          const suffix = own.length > 1 ? ` (vs ${shortLabel(comparison.reference)})` : "";
          for (const { metric, target } of comparison.metrics) {
            const values = pairedRatios(group, comparison.ours, comparison.reference, metric);
            const { median: value, min, max } = spread(values);
            const label = metric === "speed" ? "speed" : "CPU";
            ratios.push(`${label} ${ratio(value)}${values.length > 1 ? ` (${decimals(min)}–${decimals(max)})` : ""}${suffix}`);
            if (!target) continue;
            targets.push(`${label} ${targetLabel(target)}`);
            if (!Number.isFinite(value)) {
              verdicts.push("not measured");
              continue;
            }
            const pass = meets(value, target);
            checks.push({ what: `pull ${group.format}: ${comparison.ours} vs ${comparison.reference}, ${label}`, pass });
            verdicts.push(verdict(pass));
          }
        }
        const samples = result?.samples ?? [];
        rows.push([
          formatName(group.format),
          commandLabel(tool, group.format),
          `${samples.length}${result?.hangs ? ` (+${result.hangs} hung: killed, run again)` : ""}`,
          result?.error ? "FAILED" : range(samples.map((sample) => sample.seconds)),
          result?.error ? "–" : range(samples.map((sample) => sample.cpuSeconds)),
          samples.length ? mib(Math.max(...samples.map((sample) => sample.treePeakRss))) : "–",
          ratios.join("; ") || "",
          targets.join("; ") || (own.length ? "info" : ""),
          verdicts.join("; ") || "",
        ]);
      }
    }
    if (rows.length === 0) return "(not measured)";
    return table(["image", "command", "runs", "wall s: median (min–max)", "CPU s", "peak RSS (tree)", "ratio: median (min–max)", "target", "result"], rows);
  };

  const unsupported = FORMATS.filter((format) => data.systemdPullDecodes[format] === false);
  const size = sizeLabel(data.imageSize);
  const served = FORMATS.filter((format) => data.compressedSizes[format] !== undefined)
    .map((format) => `${format} ${mib(data.compressedSizes[format]!)}`).join(", ");

  const blockRows: string[][] = [["source image (zero runs as holes: the ideal)", ...FORMATS.map(() => allocation(data.sourceAllocated, data.imageSize))]];
  const written = TOOLS.filter((tool) => groups.some((group) => group.results[tool]?.allocated !== undefined));
  for (const tool of written) {
    blockRows.push([spaceLabel(tool), ...FORMATS.map((format) => {
      const result = groups.find((group) => group.format === format && group.results[tool]?.allocated !== undefined)?.results[tool];
      if (!result || result.allocated === undefined || result.apparent === undefined) return "–";
      return allocation(result.allocated, result.apparent);
    })]);
  }
  const blocksTable = table(["written by", ...FORMATS.map((format) => `\`${format}\``)], blockRows);

  const markdown = `### Pulls: how they were measured

A ${size} disk-like image (${describeMix()}, in extents of 4 KiB–4 MiB), served by nginx on
127.0.0.1 (served sizes: ${served}; \`gzip -6\`, \`zstd -3\`, \`xz -6 -T1\`, \`bzip2 -9\`). Every tool
fetches the same file from the same nginx and writes into the same tmpfs (systemd-pull with
\`--image-root=\` on it). The tools of a row are run as a group: on run i each runs once, back to back,
the order reversed from one run to the next (A B C, C B A, …), each on an emptied tmpfs that was
warmed first by writing and deleting a file as large as the image; the first run of every tool is
checked against the image's SHA-256. systemd-pull writes its download into a hidden file and then
copies it to NAME.raw, as it always does. **Wall**: seconds from spawn to exit, median of the runs
(lowest–highest). **CPU s**: user + system seconds of the whole process tree (GNU time, which counts
the children it waited for: curl, the decoder and openssl in a pipeline; zstd, xz or lbzip2 under
netimport), median. **Peak RSS (tree)**: the largest, over the runs, of the summed RSS of every
process of the tool's tree, sampled every 20 ms (never below GNU time's largest single process; a
child between fork and exec is not counted twice): for netimport that is netimport plus the decoder
it spawns, what its memory budget sees; for a pipeline, curl plus decoder (plus tee and openssl). **Ratio**: median over the runs of the per-run
ratio, run i's tools having run back to back: speed = reference wall / netimport wall (above 1:
netimport is faster), CPU = netimport CPU / reference CPU (below 1: netimport uses less).
Commands: \`netimport pull --verify=… URL FILE\`; \`curl -sS -o FILE URL\`; \`curl -sS URL | DECODER -dc >
FILE\` (bash, \`set -o pipefail\`); \`systemd-pull raw --verify=no --image-root=TMPFS/machines URL
bench\`${unsupported.length ? ` (it does not decode ${unsupported.map((format) => `\`${format}\``).join(", ")}: stored as is, so not compared)` : ""}.

### Pulls with \`--verify=no\`, against \`curl | decoder\`

Targets for raw and zst: speed ≥ 0.9× and CPU ≤ 1.5× of the pipeline; gz, xz and bz2 for information.${data.lbzip2 ? " netimport decodes bz2 with lbzip2 when it is installed (it is here): the `lbzip2` row is that equal-work pipeline." : ""}

${sectionTable("curl")}

### Verifying pulls, against the equal-work pipeline

\`--verify=sha256:HEX\` pins the SHA-256 of the file as served; \`--verify=checksum\` fetches \`SHA256SUMS\`
next to the image (\`HEX  NAME\` lines, as \`sha256sum\` writes them). The reference hashes the bytes as
served with openssl while writing the image: \`curl -sS URL | tee FILE | openssl dgst -sha256\` (raw),
\`{ curl -sS URL | tee /dev/fd/3 | zstd -dc > FILE; } 3>&1 | openssl dgst -sha256\` (zst: the compressed
bytes hashed while zstd decodes them).

${sectionTable("verify")}

### Against systemd-pull, same destination

The netimport rows are the same runs as in the \`--verify=no\` table (one group per format).

${sectionTable("systemd-pull")}

### Space the written image takes

Allocated (\`stat -c %b*%B\`) of the ${size} written image after the first run, and allocated / apparent size.

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
