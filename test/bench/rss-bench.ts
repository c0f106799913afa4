// Peak RSS of `netimport pull` at two image sizes far apart: it must stay flat and under the target.
import { GiB, MiB, type Format } from "./images.ts";
import { pullOnce, VARIANTS, type PullContext, type PullData, type Tool } from "./pull-bench.ts";
import { mib, sizeLabel, table, verdict, type Check, type Rendered } from "./report.ts";
import { inspectOutput } from "./verify-output.ts";

const PEAK_TARGET = 160 * MiB;
/** "Flat": the 2 GiB pull may not peak more than this above the 256 MiB pull. */
const FLAT_TOLERANCE = 16 * MiB;

export const RSS_SIZES = [256 * MiB, 2 * GiB] as const;

type Variant = { tool: Extract<Tool, "netimport" | keyof typeof VARIANTS>; format: Format };
/** Measured at both sizes; bz2 (slow) only at 1 GiB, from the throughput runs. */
export const RSS_VARIANTS: readonly Variant[] = [
  { tool: "netimport", format: "raw" },
  { tool: "netimport", format: "gz" },
  { tool: "netimport", format: "zst" },
  { tool: "netimport", format: "xz" },
  { tool: "netimport-js", format: "xz" },
];
const FROM_PULL_ONLY: readonly Variant[] = [
  { tool: "netimport", format: "bz2" }, { tool: "netimport-bzip2", format: "bz2" }, { tool: "netimport-js", format: "bz2" },
];

export type RssData = {
  /** peakRss: the whole process tree (netimport and any decoder it spawns); nodePeakRss: netimport alone. */
  results: Record<string, { peakRss?: number; nodePeakRss?: number; seconds?: number; error?: string }>;
};

const key = (size: number, { tool, format }: Variant) => `${size}/${tool}/${format}`;
const label = ({ tool, format }: Variant) => `\`${format}\`${tool === "netimport" ? "" : `, ${VARIANTS[tool].label}`}`;

/**
 * Pulls each (size, variant) once with netimport, checking the output's hash.
 * @example const data = await benchRss(context, ["raw", "xz"]);
 */
export async function benchRss(context: PullContext, formats: readonly Format[], previous?: RssData): Promise<RssData> {
  const data: RssData = { results: { ...previous?.results } };
  for (const size of RSS_SIZES) {
    for (const variant of RSS_VARIANTS.filter(({ format }) => formats.includes(format))) {
      const { run, output, error } = await pullOnce(context, variant.tool, variant.format, size, { peakRss: true });
      let failure = error;
      if (!failure && (await inspectOutput(output)).sha256 !== context.images.sha256.get(size)) {
        failure = `${variant.tool} ${variant.format} (${sizeLabel(size)}): output differs from the image`;
      }
      data.results[key(size, variant)] = failure
        ? { error: failure }
        : { peakRss: run.treePeakRss, nodePeakRss: run.peakRss, seconds: run.seconds };
      context.log(`rss: ${variant.tool} ${variant.format} ${sizeLabel(size)}: ${failure ? `FAILED ${failure}`
        : `peak RSS ${mib(run.treePeakRss ?? NaN)} (netimport alone ${mib(run.peakRss ?? NaN)})`}`);
    }
  }
  context.scratch.clear();
  return data;
}

/** The peak RSS table; the 1 GiB column comes from the throughput runs when there are any. */
export function renderRss(data: RssData, pull?: PullData): Rendered {
  const checks: Check[] = [];
  const failures: string[] = [];
  const rows: string[][] = [];
  const variants = [
    ...RSS_VARIANTS.filter((variant) => RSS_SIZES.some((size) => data.results[key(size, variant)])),
    ...FROM_PULL_ONLY.filter(({ tool, format }) => pull?.results[`${tool}/${format}`]),
  ];
  for (const variant of variants) {
    const [small, large] = RSS_SIZES.map((size) => {
      const result = data.results[key(size, variant)];
      if (result?.error) failures.push(result.error);
      return result;
    });
    const show = (result: { peakRss?: number; error?: string } | undefined) =>
      result === undefined ? "–" : result.error ? "FAILED" : mib(result.peakRss ?? NaN);
    const fromPull = pull?.results[`${variant.tool}/${variant.format}`];
    const pullPeak = fromPull && !fromPull.error && fromPull.peakRss.length ? Math.max(...fromPull.peakRss) : undefined;
    const measured = [small?.peakRss, pullPeak, large?.peakRss].filter((peak): peak is number => peak !== undefined);
    let underTarget = "–";
    if (measured.length) {
      const pass = Math.max(...measured) <= PEAK_TARGET;
      checks.push({ what: `peak RSS ${variant.tool} ${variant.format}`, pass });
      underTarget = verdict(pass);
    }
    let flat = "–";
    if (small?.peakRss !== undefined && large?.peakRss !== undefined) {
      const growth = large.peakRss - small.peakRss;
      const pass = growth <= FLAT_TOLERANCE;
      checks.push({ what: `peak RSS flat ${variant.tool} ${variant.format}`, pass });
      flat = `${signed(growth)} ${verdict(pass)}`;
    }
    const lateGrowth = pullPeak !== undefined && large?.peakRss !== undefined ? signed(large.peakRss - pullPeak) : "–";
    rows.push([label(variant), show(small), pullPeak === undefined ? "–" : mib(pullPeak), show(large), underTarget, flat, lateGrowth]);
  }
  const markdown = `### Peak RSS of \`netimport pull\`

Summed RSS of the process tree (netimport and any system decompressor it spawns), sampled every
20 ms (the tree's members looked up every 100 ms) and never below GNU time's "Maximum resident set
size" of netimport itself; the 1 GiB column is the largest of the throughput runs (where every tool
is sampled alike). Target: ≤ ${mib(PEAK_TARGET)} at every size, and flat
(the 2 GiB pull no more than ${mib(FLAT_TOLERANCE)} above the 256 MiB one). The last column shows
whether growth continues past 1 GiB or has levelled off (single runs: expect a few MiB of noise).

${table(["image", "256 MiB", "1 GiB", "2 GiB", `≤ ${mib(PEAK_TARGET)}`, "2 GiB − 256 MiB (flat)", "2 GiB − 1 GiB"], rows)}
`;
  return { markdown, checks, failures };
}

function signed(bytes: number): string {
  return `${bytes >= 0 ? "+" : "−"}${mib(Math.abs(bytes))}`;
}
