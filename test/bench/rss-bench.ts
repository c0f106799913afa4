// Peak RSS of `netimport pull` at two image sizes far apart: it must stay flat and under the target.
import { GiB, MiB, type Format } from "./images.ts";
import { pullOnce, type PullContext, type PullData } from "./pull-bench.ts";
import { mib, sizeLabel, table, verdict, type Check, type Rendered } from "./report.ts";
import { inspectOutput } from "./verify-output.ts";

const PEAK_TARGET = 160 * MiB;
/** "Flat": the 2 GiB pull may not peak more than this above the 256 MiB pull. */
const FLAT_TOLERANCE = 16 * MiB;

export const RSS_SIZES = [256 * MiB, 2 * GiB] as const;
export const RSS_FORMATS: readonly Format[] = ["raw", "gz", "zst", "xz"];

export type RssData = {
  /** peakRss: the whole process tree (netimport and any decoder it spawns); nodePeakRss: netimport alone. */
  results: Record<string, { peakRss?: number; nodePeakRss?: number; seconds?: number; error?: string }>;
};

const key = (size: number, format: Format) => `${size}/${format}`;

/**
 * Pulls each (size, format) once with netimport under GNU time, checking the output's hash.
 * @example const data = await benchRss(context, RSS_FORMATS);
 */
export async function benchRss(context: PullContext, formats: readonly Format[], previous?: RssData): Promise<RssData> {
  const data: RssData = { results: { ...previous?.results } };
  for (const size of RSS_SIZES) {
    for (const format of formats) {
      const { run, output, error } = await pullOnce(context, "netimport", format, size, { peakRss: true });
      let failure = error;
      if (!failure && (await inspectOutput(output)).sha256 !== context.images.sha256.get(size)) {
        failure = `netimport ${format} (${sizeLabel(size)}): output differs from the image`;
      }
      data.results[key(size, format)] = failure ? { error: failure } : { peakRss: run.treePeakRss, nodePeakRss: run.peakRss, seconds: run.seconds };
      context.log(`rss: netimport ${format} ${sizeLabel(size)}: ${failure ? `FAILED ${failure}` : `peak RSS ${mib(run.treePeakRss ?? NaN)} (netimport alone ${mib(run.peakRss ?? NaN)})`}`);
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
  const formats = RSS_FORMATS.filter((format) => RSS_SIZES.some((size) => data.results[key(size, format)]));
  const pullFormats = pull ? (["bz2"] as Format[]).filter((format) => pull.results[`netimport/${format}`]) : [];
  for (const format of [...formats, ...pullFormats]) {
    const peaks: (number | undefined)[] = [];
    const cells = RSS_SIZES.map((size) => {
      const result = data.results[key(size, format)];
      if (result?.error) failures.push(result.error);
      peaks.push(result?.peakRss);
      return result === undefined ? "–" : result.error ? "FAILED" : mib(result.peakRss ?? NaN);
    });
    const fromPull = pull?.results[`netimport/${format}`];
    const pullPeak = fromPull && !fromPull.error && fromPull.peakRss.length ? Math.max(...fromPull.peakRss) : undefined;
    const [small, large] = peaks;
    const measured = [small, pullPeak, large].filter((peak): peak is number => peak !== undefined);
    let underTarget = "–";
    if (measured.length) {
      const pass = Math.max(...measured) <= PEAK_TARGET;
      checks.push({ what: `peak RSS ${format}`, pass });
      underTarget = verdict(pass);
    }
    let flat = "–";
    if (small !== undefined && large !== undefined) {
      const pass = large - small <= FLAT_TOLERANCE;
      checks.push({ what: `peak RSS flat ${format}`, pass });
      flat = `${large >= small ? "+" : "−"}${mib(Math.abs(large - small))} ${verdict(pass)}`;
    }
    rows.push([`\`${format}\``, cells[0]!, pullPeak === undefined ? "–" : mib(pullPeak), cells[1]!, underTarget, flat]);
  }
  const markdown = `### Peak RSS of \`netimport pull\`

Summed RSS of the process tree (netimport and any system decompressor it spawns), sampled every
20 ms, and never below GNU time's "Maximum resident set size" of netimport itself; the 1 GiB column
is the largest of the throughput runs.
Target: ≤ ${mib(PEAK_TARGET)} at every size, and flat (2 GiB no more than ${mib(FLAT_TOLERANCE)} above 256 MiB).

${table(["format", "256 MiB image", "1 GiB image", "2 GiB image", `≤ ${mib(PEAK_TARGET)}`, "2 GiB − 256 MiB (flat)"], rows)}
`;
  return { markdown, checks, failures };
}
