// netimport's benchmarks, as ratios against native tools measured in the same run.
//
//   npm run bench                          build, then everything (~8–10 min on 2 busy cores once the
//                                          images are cached; building them the first time takes
//                                          ~25 min more, mostly `xz -6` of 3.25 GiB)
//   node test/bench/run.ts generator       generator start-up vs `node -e 0`, executable size
//   node test/bench/run.ts pull            1 GiB pulls: netimport vs curl | decoder vs systemd-pull
//   node test/bench/run.ts rss             netimport's peak RSS at 256 MiB and 2 GiB
//   node test/bench/run.ts report          re-render results.md from the saved measurements
// Options: --runs=N (pulls of raw/gz/zst, default 3), --slow-runs=N (xz/bz2, default 1),
//   --generator-runs=N (default 30), --tools=netimport,curl,systemd-pull,netimport-js,netimport-bzip2,
//   --formats=raw,gz,zst,xz,bz2
//
// Each section saves its measurements in .cache/bench/, so sections (and tool subsets) can be re-run
// alone; results.md is rendered from all saved measurements. Nothing here asserts on time: targets are
// reported as PASS/MISS and the exit status is non-zero only when a tool failed.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { benchGenerator, renderGenerator, type GeneratorData } from "./generator-bench.ts";
import { ensureImages, FORMATS, GiB, MiB, type Format } from "./images.ts";
import { startNginx, type Nginx } from "./nginx.ts";
import { benchPull, renderPull, TOOLS, type PullContext, type PullData, type Tool } from "./pull-bench.ts";
import type { Rendered } from "./report.ts";
import { benchRss, renderRss, RSS_SIZES, RSS_VARIANTS, type RssData } from "./rss-bench.ts";
import { killRunning } from "./measure.ts";
import { mountTmpfs, type Tmpfs } from "./tmpfs.ts";

const SECTIONS = ["generator", "pull", "rss"] as const;
type Section = (typeof SECTIONS)[number];

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const cacheDir = join(repo, ".cache", "bench");
const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

type Options = {
  sections: Section[];
  reportOnly: boolean;
  runs: number;
  slowRuns: number;
  generatorRuns: number;
  tools: Tool[];
  formats: Format[];
};

function listOption<T extends string>(value: string, allowed: readonly T[], name: string): T[] {
  const items = value.split(",").filter(Boolean);
  for (const item of items) if (!allowed.includes(item as T)) throw new Error(`--${name}: unknown '${item}' (one of ${allowed.join(", ")})`);
  return items as T[];
}

function parseArguments(argv: string[]): Options {
  const options: Options = {
    sections: [], reportOnly: false, runs: 3, slowRuns: 1, generatorRuns: 30, tools: [...TOOLS], formats: [...FORMATS],
  };
  for (const argument of argv) {
    const [name, value = ""] = argument.split("=", 2) as [string, string?];
    if (name === "--runs") options.runs = Number(value);
    else if (name === "--slow-runs") options.slowRuns = Number(value);
    else if (name === "--generator-runs") options.generatorRuns = Number(value);
    else if (name === "--tools") options.tools = listOption(value, TOOLS, "tools");
    else if (name === "--formats") options.formats = listOption(value, FORMATS, "formats");
    else if (argument === "report") options.reportOnly = true;
    else if ((SECTIONS as readonly string[]).includes(argument)) options.sections.push(argument as Section);
    else throw new Error(`unknown argument '${argument}'`);
  }
  for (const count of [options.runs, options.slowRuns, options.generatorRuns]) {
    if (!Number.isInteger(count) || count < 1) throw new Error("run counts must be positive integers");
  }
  if (options.sections.length === 0 && !options.reportOnly) options.sections = [...SECTIONS];
  return options;
}

// Bump when the shape of the saved measurements changes: older files are then ignored.
const DATA_VERSION = 2;

function load<T>(section: Section): T | undefined {
  const file = join(cacheDir, `${section}.json`);
  if (!existsSync(file)) return undefined;
  const saved = JSON.parse(readFileSync(file, "utf8")) as { version?: number; data?: T };
  return saved.version === DATA_VERSION ? saved.data : undefined;
}

function save(section: Section, data: unknown): void {
  writeFileSync(join(cacheDir, `${section}.json`), `${JSON.stringify({ version: DATA_VERSION, data }, null, 1)}\n`);
}

function machine(): string {
  let commit = "unknown";
  try {
    commit = execFileSync("git", ["-C", repo, "describe", "--always", "--dirty"], { encoding: "utf8" }).trim();
  } catch { /* not a git checkout */ }
  const cpu = cpus();
  return `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, netimport ${commit}, ` +
    `${cpu.length} × ${cpu[0]?.model.trim() ?? "unknown CPU"}, Linux ${release()}, Node ${process.version} (pinned)`;
}

function render(): Rendered {
  const generator = load<GeneratorData>("generator");
  const pull = load<PullData>("pull");
  const rss = load<RssData>("rss");
  const parts: Rendered[] = [];
  if (generator) parts.push(renderGenerator(generator));
  if (pull) parts.push(renderPull(pull));
  if (rss) parts.push(renderRss(rss, pull));
  const checks = parts.flatMap((part) => part.checks);
  const passed = checks.filter((check) => check.pass).length;
  const missed = checks.filter((check) => !check.pass).map((check) => check.what);
  const summary = `Targets: ${passed} of ${checks.length} PASS${missed.length ? `; MISS: ${missed.join("; ")}` : ""}.`;
  const markdown = `## Benchmarks\n\nMeasured ${machine()}. Reproduce with \`npm run bench\`.\n\n` +
    `${parts.map((part) => part.markdown).join("\n")}\n${summary}\n`;
  return { markdown, checks, failures: parts.flatMap((part) => part.failures) };
}

async function runSections(options: Options): Promise<string[]> {
  const needsExecutable = options.sections.includes("generator") || options.tools.some((tool) => tool.startsWith("netimport"));
  // A snapshot of the build, so a rebuild by someone else during the run cannot pull it away.
  const exe = join(cacheDir, "netimport");
  if (needsExecutable) {
    const built = join(repo, "dist", "netimport");
    if (!existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` first`);
    copyFileSync(built, exe);
  }
  const failures: string[] = [];
  if (options.sections.includes("generator")) {
    const data = await benchGenerator({ repo, exe, cacheDir, runs: options.generatorRuns, log });
    save("generator", data);
    failures.push(...data.failures);
  }
  const wantsPull = options.sections.includes("pull");
  const rssFormats = [...new Set(RSS_VARIANTS.map(({ format }) => format))].filter((format) => options.formats.includes(format));
  const wantsRss = options.sections.includes("rss") && rssFormats.length > 0;
  if (!wantsPull && !wantsRss) return failures;

  const wanted: [number, Format[]][] = [];
  if (wantsPull) wanted.push([MiB, [...FORMATS]], [GiB, options.formats]);
  if (wantsRss) for (const size of RSS_SIZES) wanted.push([size, rssFormats]);
  const images = await ensureImages(join(cacheDir, "images"), wanted, log);

  let nginx: Nginx | undefined;
  let scratch: Tmpfs | undefined;
  const cleanUp = async () => {
    await killRunning();
    await nginx?.stop();
    scratch?.unmount();
  };
  const onSignal = () => { void cleanUp().finally(() => process.exit(130)); };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    nginx = await startNginx(images.dir);
    scratch = mountTmpfs("3g");
    log(`nginx (pid ${nginx.pid}) serving ${images.dir} at ${nginx.url}; output on tmpfs ${scratch.path}`);
    // Read every image once so the page cache serves all tools alike.
    execFileSync("cat", images.files, { stdio: ["ignore", "ignore", "inherit"] });
    const context: PullContext = { exe, baseUrl: nginx.url, scratch, images, log };
    if (wantsPull) {
      const data = await benchPull(context, {
        size: GiB, probeSize: MiB, tools: options.tools, formats: options.formats,
        runs: options.runs, slowRuns: options.slowRuns, previous: load<PullData>("pull"),
      });
      save("pull", data);
      failures.push(...Object.values(data.results).flatMap((result) => (result.error ? [result.error] : [])));
    }
    if (wantsRss) {
      const data = await benchRss(context, rssFormats, load<RssData>("rss"));
      save("rss", data);
      failures.push(...Object.values(data.results).flatMap((result) => (result.error ? [result.error] : [])));
    }
  } finally {
    await cleanUp();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return failures;
}

async function main(): Promise<number> {
  const options = parseArguments(process.argv.slice(2));
  mkdirSync(cacheDir, { recursive: true });
  const failures = options.reportOnly ? [] : await runSections(options);
  const { markdown } = render();
  writeFileSync(join(cacheDir, "results.md"), markdown);
  process.stdout.write(markdown);
  log(`results written to ${join(cacheDir, "results.md")}`);
  for (const failure of failures) log(`FAILED: ${failure}`);
  return failures.length ? 1 : 0;
}

main().then(
  (code) => { process.exitCode = code; },
  (error: unknown) => {
    log(`bench: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
    process.exitCode = 2;
  },
);
