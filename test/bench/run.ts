// netimport's benchmarks, as ratios against native tools measured in the same run, paired.
//
//   npm run bench                          build, then everything (~13 min on 2 busy cores once the
//                                          images are cached; building them the first time takes
//                                          ~25 min more, mostly `xz -6` of 3.25 GiB)
//   node test/bench/run.ts generator       generator start-up vs `node -e 0`, executable size
//   node test/bench/run.ts pull            1 GiB pulls: netimport vs curl | decoder, vs the verifying
//                                          pipeline, vs systemd-pull, paired run by run
//   node test/bench/run.ts rss             netimport's peak RSS at 256 MiB and 2 GiB, every format
//   node test/bench/run.ts report          re-render results.md from the saved measurements
// Options: --exe=PATH (default dist/netimport), --commit=DESCRIPTION (default `git describe --always
//   --dirty` of the tree PATH lies in), --runs=N (paired runs of raw/gz/zst, default 5), --xz-runs=N
//   (default 3), --bz2-runs=N (default 2: a bz2 run is four ~25 s pulls), --slow-runs=N (both),
//   --generator-runs=N (default 30), --formats=raw,gz,zst,xz,bz2, --tools=… (default all but
//   the variants with hidden decoders, netimport-js and netimport-bzip2, which are added by naming them).
//   Node must be the pinned one: `node --import ./test/support/text-loader.ts test/bench/run.ts …`.
//
// Each section saves its measurements in .cache/bench/ (a group of the pull section, e.g. zst with
// --verify=no, replaces its earlier measurement as a whole), so sections can be re-run alone;
// results.md is rendered from all saved measurements. Nothing here asserts on time: targets are
// reported as PASS/MISS and the exit status is non-zero only when a tool failed.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { benchGenerator, renderGenerator, type GeneratorData } from "./generator-bench.ts";
import { ensureImages, FORMATS, GiB, MiB, type Format } from "./images.ts";
import { startNginx, type Nginx } from "./nginx.ts";
import { benchPull, DEFAULT_TOOLS, installed, renderPull, SYSTEMD_PULL, TOOLS, type PullContext, type PullData, type Tool } from "./pull-bench.ts";
import type { Rendered } from "./report.ts";
import { benchRss, renderRss, RSS_SIZES, rssVariants, type RssData } from "./rss-bench.ts";
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
  exe: string;
  commit?: string;
  runs: number;
  xzRuns: number;
  bz2Runs: number;
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
    sections: [], reportOnly: false, exe: join(repo, "dist", "netimport"),
    runs: 5, xzRuns: 3, bz2Runs: 2, generatorRuns: 30, tools: [...DEFAULT_TOOLS], formats: [...FORMATS],
  };
  for (const argument of argv) {
    const [name, value = ""] = argument.split("=", 2) as [string, string?];
    if (name === "--runs") options.runs = Number(value);
    else if (name === "--slow-runs") options.xzRuns = options.bz2Runs = Number(value);
    else if (name === "--xz-runs") options.xzRuns = Number(value);
    else if (name === "--bz2-runs") options.bz2Runs = Number(value);
    else if (name === "--generator-runs") options.generatorRuns = Number(value);
    else if (name === "--tools") options.tools = listOption(value, TOOLS, "tools");
    else if (name === "--formats") options.formats = listOption(value, FORMATS, "formats");
    else if (name === "--exe") options.exe = resolve(value);
    else if (name === "--commit") options.commit = value;
    else if (argument === "report") options.reportOnly = true;
    else if ((SECTIONS as readonly string[]).includes(argument)) options.sections.push(argument as Section);
    else throw new Error(`unknown argument '${argument}'`);
  }
  for (const count of [options.runs, options.xzRuns, options.bz2Runs, options.generatorRuns]) {
    if (!Number.isInteger(count) || count < 1) throw new Error("run counts must be positive integers");
  }
  if (options.sections.length === 0 && !options.reportOnly) options.sections = [...SECTIONS];
  return options;
}

// Bump when the shape of the saved measurements changes: older files are then ignored.
// 3: paired groups with CPU seconds and both RSS measures; every saved section carries its Meta.
const DATA_VERSION = 3;

/** Where and on what a section was measured. */
type Meta = { date: string; commit: string; machine: string };
type Saved<T> = { data: T; meta: Meta };

function load<T>(section: Section): Saved<T> | undefined {
  const file = join(cacheDir, `${section}.json`);
  if (!existsSync(file)) return undefined;
  const saved = JSON.parse(readFileSync(file, "utf8")) as { version?: number; data?: T; meta?: Meta };
  return saved.version === DATA_VERSION && saved.data && saved.meta ? { data: saved.data, meta: saved.meta } : undefined;
}

/**
 * What an earlier run of `section` measured, to keep for what this run does not measure again: only
 * when it measured the same commit on the same machine, as the section's one header line says.
 */
function previous<T>(section: Section, meta: Meta): T | undefined {
  const saved = load<T>(section);
  return saved && saved.meta.commit === meta.commit && saved.meta.machine === meta.machine ? saved.data : undefined;
}

function save(section: Section, data: unknown, meta: Meta): void {
  writeFileSync(join(cacheDir, `${section}.json`), `${JSON.stringify({ version: DATA_VERSION, meta, data }, null, 1)}\n`);
}

/** The first match of `pattern`'s group in what `command args` prints on stdout and stderr; "?" if none. */
function versionOf(command: string, args: string[], pattern: RegExp): string {
  let output = "";
  try {
    output = execFileSync("sh", ["-c", '"$0" "$@" 2>&1', command, ...args], { encoding: "utf8" });
  } catch (error) {
    output = String((error as { stdout?: string }).stdout ?? "");
  }
  return pattern.exec(output)?.[1] ?? "?";
}

/** The machine, and the versions of what the run compares against. */
function machine(): string {
  const cpu = cpus();
  const tools = [
    `nginx ${versionOf("nginx", ["-v"], /nginx\/(\S+)/)}`,
    `curl ${versionOf("curl", ["--version"], /^curl (\S+)/m)}`,
    `zstd ${versionOf("zstd", ["--version"], /v(\d[\d.]*)/)}`,
    `systemd-pull ${versionOf(SYSTEMD_PULL, ["--version"], /^systemd (.+)$/m)}`,
    `OpenSSL ${versionOf("openssl", ["version"], /^OpenSSL (\S+)/m)}`,
    `gzip ${versionOf("gzip", ["--version"], /^gzip (\S+)/m)}`,
    `xz ${versionOf("xz", ["--version"], /xz \(XZ Utils\) (\S+)/)}`,
    `bzip2 ${versionOf("bzip2", ["--help"], /Version ([\d.]+)/)}`,
    installed("lbzip2") ? `lbzip2 ${versionOf("lbzip2", ["--version"], /version (\S+)/)}` : "no lbzip2",
  ];
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? "unknown CPU"}, Linux ${release()}, Node ${process.version} (pinned); ${tools.join(", ")}`;
}

/** `git describe --always --dirty` of the work tree `exe` lies in. */
function describe(exe: string): string {
  try {
    const dir = dirname(realpathSync(exe));
    return execFileSync("git", ["-C", dir, "describe", "--always", "--dirty"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch { return "unknown (not built in a git work tree: pass --commit=)"; }
}

function stamp(iso: string): string {
  return `${iso.slice(0, 16).replace("T", " ")} UTC`;
}

function render(): Rendered {
  const generator = load<GeneratorData>("generator");
  const pull = load<PullData>("pull");
  const rss = load<RssData>("rss");
  const sections: [Saved<unknown> | undefined, () => Rendered][] = [
    [generator, () => renderGenerator(generator!.data)],
    [pull, () => renderPull(pull!.data)],
    [rss, () => renderRss(rss!.data, pull?.data)],
  ];
  const present = sections.filter(([saved]) => saved);
  const metas = present.map(([saved]) => saved!.meta);
  // One header when every section was measured on the same commit and machine; else a line per section.
  const uniform = new Set(metas.map((meta) => `${meta.commit}\n${meta.machine}`)).size <= 1;
  const parts: Rendered[] = present.map(([saved, draw]) => {
    const part = draw();
    if (uniform) return part;
    const meta = saved!.meta;
    const note = `*Measured ${stamp(meta.date)}, netimport ${meta.commit}, on ${meta.machine}.*`;
    const [heading, ...rest] = part.markdown.split("\n\n");
    return { ...part, markdown: [heading, note, ...rest].join("\n\n") };
  });
  const checks = parts.flatMap((part) => part.checks);
  const passed = checks.filter((check) => check.pass).length;
  const missed = checks.filter((check) => !check.pass).map((check) => check.what);
  const summary = `Targets: ${passed} of ${checks.length} PASS${missed.length ? `; MISS: ${missed.join("; ")}` : ""}.`;
  const dates = metas.map((meta) => stamp(meta.date)).sort();
  const when = dates[0] === dates.at(-1) ? dates[0] : `${dates[0]} to ${dates.at(-1)}`;
  const heading = metas.length === 0
    ? "Nothing measured yet."
    : uniform
      ? `Measured ${when}, netimport ${metas[0]!.commit}, on ${metas[0]!.machine}.`
      : "Sections measured on different commits or machines: see each section.";
  const markdown = `## Benchmarks\n\n${heading} Reproduce with \`npm run bench\`.\n\n` +
    `${parts.map((part) => part.markdown).join("\n")}\n${summary}\n`;
  return { markdown, checks, failures: parts.flatMap((part) => part.failures) };
}

async function runSections(options: Options): Promise<string[]> {
  const usesNetimport = options.sections.includes("generator") || options.sections.includes("rss") ||
    options.tools.some((tool) => tool.startsWith("netimport"));
  // A snapshot of the build, so a rebuild by someone else during the run cannot pull it away.
  const exe = join(cacheDir, "netimport");
  let commit = options.commit ?? "none";
  if (usesNetimport) {
    if (!existsSync(options.exe)) throw new Error(`${options.exe} is missing: run \`npm run build\` first, or pass --exe=PATH`);
    commit = options.commit ?? describe(options.exe);
    copyFileSync(options.exe, exe);
    log(`netimport: ${options.exe} (${commit})`);
  }
  const meta = (): Meta => ({ date: new Date().toISOString(), commit, machine: machine() });
  const failures: string[] = [];
  if (options.sections.includes("generator")) {
    const data = await benchGenerator({ repo, exe, cacheDir, runs: options.generatorRuns, log });
    save("generator", data, meta());
    failures.push(...data.failures);
  }
  const wantsPull = options.sections.includes("pull");
  const variants = rssVariants(options.formats, options.tools.includes("netimport") ? options.tools : [...options.tools, "netimport"]);
  const wantsRss = options.sections.includes("rss") && variants.length > 0;
  if (!wantsPull && !wantsRss) return failures;

  const wanted: [number, Format[]][] = [];
  if (wantsPull) wanted.push([MiB, [...FORMATS]], [GiB, options.formats]);
  if (wantsRss) for (const size of RSS_SIZES) wanted.push([size, [...new Set(variants.map(({ format }) => format))]]);
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
        runs: { raw: options.runs, gz: options.runs, zst: options.runs, xz: options.xzRuns, bz2: options.bz2Runs },
        previous: previous<PullData>("pull", meta()),
      });
      save("pull", data, meta());
      for (const group of Object.values(data.groups)) {
        for (const result of Object.values(group.results)) if (result?.error) failures.push(result.error);
      }
    }
    if (wantsRss) {
      const data = await benchRss(context, variants, previous<RssData>("rss", meta()));
      save("rss", data, meta());
      failures.push(...Object.values(data.results).flatMap((result) => (result.error ? [result.error] : [])));
    }
  } finally {
    await cleanUp();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return [...new Set(failures)];
}

async function main(): Promise<number> {
  const options = parseArguments(process.argv.slice(2));
  mkdirSync(cacheDir, { recursive: true });
  const started = performance.now();
  const failures = options.reportOnly ? [] : await runSections(options);
  const { markdown } = render();
  writeFileSync(join(cacheDir, "results.md"), markdown);
  process.stdout.write(markdown);
  log(`results written to ${join(cacheDir, "results.md")} (${((performance.now() - started) / 60000).toFixed(1)} min)`);
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
