// Peak RSS of `netimport pull` at two image sizes far apart, in every format: it must stay flat and
// under the target.
import { GiB, MiB, type Format } from "./images.ts";
import { pullOnce, VARIANTS, type PullContext, type PullData, type Tool } from "./pull-bench.ts";
import { mib, ratio, sizeLabel, table, verdict, type Check, type Rendered } from "./report.ts";
import { inspectOutput } from "./verify-output.ts";

export const PEAK_TARGET = 128 * MiB;
/** "Flat": the 2 GiB pull's peak may be at most this many times the 256 MiB pull's. */
export const FLAT_TARGET = 1.1;

export const RSS_SIZES = [256 * MiB, 2 * GiB] as const;
/** Pulls per size: a sampled peak moves by ~10% from run to run, so the quick formats run thrice (the peak is the largest). */
export const RSS_RUNS: Record<Format, number> = { raw: 3, gz: 3, zst: 3, xz: 1, bz2: 1 };

export type RssVariant = { tool: Extract<Tool, "netimport" | keyof typeof VARIANTS>; format: Format };
/** Measured at both sizes (the variants only when asked for with --tools). */
export const RSS_VARIANTS: readonly RssVariant[] = [
  { tool: "netimport", format: "raw" },
  { tool: "netimport", format: "gz" },
  { tool: "netimport", format: "zst" },
  { tool: "netimport", format: "xz" },
  { tool: "netimport", format: "bz2" },
  { tool: "netimport-js", format: "xz" },
];
/** Too slow to pull at 2 GiB: only the 1 GiB runs of the pull section. */
const FROM_PULL_ONLY: readonly RssVariant[] = [
  { tool: "netimport-bzip2", format: "bz2" }, { tool: "netimport-js", format: "bz2" },
];

export type RssResult = {
  /** Peak of the process tree's summed RSS (netimport and any decoder it spawns), the largest over the runs. */
  peakRss?: number;
  /** GNU time's maximum RSS: the largest single process (netimport itself, unless a decoder outgrows it). */
  maxRss?: number;
  runs?: number;
  error?: string;
};
export type RssData = { results: Record<string, RssResult>; measuredAt?: string };

const key = (size: number, { tool, format }: RssVariant) => `${size}/${tool}/${format}`;
const label = ({ tool, format }: RssVariant) => `\`${format}\`${tool === "netimport" ? "" : `, ${VARIANTS[tool].label}`}`;

/** The variants to measure for the formats and tools asked for. */
export function rssVariants(formats: readonly Format[], tools: readonly Tool[]): RssVariant[] {
  return RSS_VARIANTS.filter(({ tool, format }) => formats.includes(format) && tools.includes(tool));
}

/**
 * Pulls each (size, variant) once with netimport, checking the output's hash.
 * @example const data = await benchRss(context, rssVariants(["raw", "xz"], ["netimport"]));
 */
export async function benchRss(context: PullContext, variants: readonly RssVariant[], previous?: RssData): Promise<RssData> {
  const data: RssData = { results: { ...previous?.results }, measuredAt: new Date().toISOString() };
  for (const size of RSS_SIZES) {
    for (const variant of variants) {
      const result: RssResult = { runs: 0 };
      for (let index = 0; index < RSS_RUNS[variant.format] && !result.error; index++) {
        const { run, output, error } = await pullOnce(context, variant.tool, variant.format, size, size);
        result.error = error;
        if (!error && index === 0 && (await inspectOutput(output)).sha256 !== context.images.sha256.get(size)) {
          result.error = `${variant.tool} ${variant.format} (${sizeLabel(size)}): output differs from the image`;
        }
        if (result.error) {
          context.log(`rss: FAILED ${result.error}`);
          break;
        }
        result.runs = index + 1;
        result.peakRss = Math.max(result.peakRss ?? 0, run.treePeakRss ?? NaN);
        result.maxRss = Math.max(result.maxRss ?? 0, run.maxRss);
        context.log(`rss: ${variant.tool} ${variant.format} ${sizeLabel(size)} run ${index + 1}: peak RSS ${mib(run.treePeakRss ?? NaN)} ` +
          `(largest process ${mib(run.maxRss)}), ${run.seconds.toFixed(1)} s`);
      }
      data.results[key(size, variant)] = result.error ? { error: result.error } : result;
    }
  }
  context.scratch.clear();
  return data;
}

/** The 1 GiB peak of `variant` from the pull section: the largest over its runs. */
function fromPull(pull: PullData | undefined, { tool, format }: RssVariant): number | undefined {
  const result = pull?.groups[`plain/${format}`]?.results[tool];
  if (!result || result.error || result.samples.length === 0) return undefined;
  return Math.max(...result.samples.map((sample) => sample.treePeakRss));
}

/** The peak RSS table; the 1 GiB column comes from the pull section's runs when there are any. */
export function renderRss(data: RssData, pull?: PullData): Rendered {
  const checks: Check[] = [];
  const failures: string[] = [];
  const rows: string[][] = [];
  const variants = [
    ...RSS_VARIANTS.filter((variant) => RSS_SIZES.some((size) => data.results[key(size, variant)]) || fromPull(pull, variant) !== undefined),
    ...FROM_PULL_ONLY.filter((variant) => fromPull(pull, variant) !== undefined),
  ];
  for (const variant of variants) {
    const [small, large] = RSS_SIZES.map((size) => {
      const result = data.results[key(size, variant)];
      if (result?.error) failures.push(result.error);
      return result;
    });
    const show = (result: RssResult | undefined) => {
      if (result === undefined) return "–";
      if (result.error) return "FAILED";
      return `${mib(result.peakRss ?? NaN)} (${mib(result.maxRss ?? NaN)})`;
    };
    const pullPeak = fromPull(pull, variant);
    const measured = [small?.peakRss, pullPeak, large?.peakRss].filter((peak): peak is number => peak !== undefined);
    let underTarget = "–";
    if (measured.length) {
      const pass = Math.max(...measured) <= PEAK_TARGET;
      checks.push({ what: `peak RSS ${variant.tool} ${variant.format} ≤ ${mib(PEAK_TARGET)}`, pass });
      underTarget = verdict(pass);
    }
    let flat = "–";
    let flatVerdict = "–";
    if (small?.peakRss !== undefined && large?.peakRss !== undefined) {
      const growth = large.peakRss / small.peakRss;
      const pass = growth <= FLAT_TARGET;
      checks.push({ what: `peak RSS flat ${variant.tool} ${variant.format}`, pass });
      flat = ratio(growth);
      flatVerdict = verdict(pass);
    }
    const lateGrowth = pullPeak !== undefined && large?.peakRss !== undefined ? ratio(large.peakRss / pullPeak) : "–";
    rows.push([label(variant), show(small), pullPeak === undefined ? "–" : mib(pullPeak), show(large),
      underTarget, flat, flatVerdict, lateGrowth]);
  }
  const markdown = `### Peak RSS of \`netimport pull --verify=no\`

Per cell: the summed RSS of netimport's process tree (netimport and the zstd, xz or lbzip2 it spawns:
what the RAM budget sees), sampled every 20 ms, and in brackets GNU time's "maximum resident set
size", the largest single process (netimport itself); the largest of ${RSS_RUNS.raw} pulls per size for raw, gz
and zst, of one for xz and bz2; the 1 GiB column is the largest tree peak of the pull section's runs. Targets: ≤ ${mib(PEAK_TARGET)} at every size, and
flat: the 2 GiB peak / the 256 MiB peak ≤ ${FLAT_TARGET}×. The last column, for information, shows
whether growth goes on past 1 GiB or has levelled off (a 256 MiB pull may end before netimport's
buffers reach their working size).

${rows.length ? table(["image", "256 MiB: tree (largest process)", "1 GiB: tree", "2 GiB: tree (largest process)", `≤ ${mib(PEAK_TARGET)}`, "2 GiB / 256 MiB", `flat (≤ ${FLAT_TARGET}×)`, "2 GiB / 1 GiB"], rows) : "(not measured)"}
`;
  return { markdown, checks, failures };
}
