// Downloads single Debian packages from suites the host's apt is not configured for (trixie, sid),
// with a private apt state under the cache, and unpacks them with dpkg-deb.
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { debianMirror, cacheDir } from "./paths.ts";
import { run } from "./exec.ts";

const aptRoot = join(cacheDir, "apt");
const keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";

function aptOptions(suite: string): string[] {
  const root = join(aptRoot, suite);
  return [
    "-o", `Dir::Etc::SourceList=${join(root, "sources.list")}`, "-o", "Dir::Etc::SourceParts=/nonexistent",
    "-o", `Dir::State::Lists=${join(root, "lists")}`, "-o", `Dir::Cache=${join(root, "cache")}`,
    "-o", "Dir::State::status=/dev/null", "-o", "APT::Sandbox::User=root", "-qq",
  ];
}

let updated = new Set<string>();

/** Refreshes the private package lists of one suite (once per process). */
export function aptUpdate(suite: string): void {
  if (updated.has(suite)) return;
  const root = join(aptRoot, suite);
  for (const sub of ["lists/partial", "cache/archives/partial"]) mkdirSync(join(root, sub), { recursive: true });
  writeFileSync(join(root, "sources.list"), `deb [signed-by=${keyring}] ${debianMirror} ${suite} main\n`);
  run("apt-get", [...aptOptions(suite), "update"]);
  updated = new Set([...updated, suite]);
}

/** The candidate version of a package in a suite, e.g. ("sid", "systemd-boot-efi") → "262.1-1". */
export function aptCandidate(suite: string, pkg: string): string {
  aptUpdate(suite);
  const policy = run("apt-cache", [...aptOptions(suite), "policy", pkg]);
  const match = /Candidate:\s*(\S+)/.exec(policy);
  if (!match?.[1] || match[1] === "(none)") throw new Error(`${pkg} not found in ${suite}`);
  return match[1];
}

/** The first package a metapackage depends on, e.g. ("trixie", "linux-image-amd64") → "linux-image-6.12…". */
export function aptFirstDependency(suite: string, pkg: string): string {
  aptUpdate(suite);
  const depends = run("apt-cache", [...aptOptions(suite), "depends", pkg]);
  const match = /Depends:\s*(\S+)/.exec(depends);
  if (!match?.[1]) throw new Error(`${pkg} in ${suite} has no dependency`);
  return match[1];
}

/** Downloads PKG=VERSION from a suite and unpacks it into DEST. */
export function aptExtract(suite: string, pkg: string, version: string, dest: string): void {
  aptUpdate(suite);
  const downloads = join(aptRoot, suite, "debs");
  mkdirSync(downloads, { recursive: true });
  run("apt-get", [...aptOptions(suite), "download", `${pkg}=${version}`], { cwd: downloads });
  const deb = readdirSync(downloads).find((name) => name.startsWith(`${pkg}_${version.replace(":", "%3a")}_`) && name.endsWith(".deb"));
  if (!deb) throw new Error(`apt-get download ${pkg} left no .deb`);
  mkdirSync(dest, { recursive: true });
  run("dpkg-deb", ["-x", join(downloads, deb), dest]);
}
