// Property: whatever the archive, if the tar sink accepts it, nothing outside the target folder was created,
// changed or removed, and nothing inside is a hard link to a file outside.
//
// The guard is tested alone: behind it runs GNU tar with --absolute-names, which follows every symlink,
// keeps absolute names and ".." and links what it is told to (a wrapper named `tar` first on PATH; each
// test file runs in its own process, so requireGnuTar() finds the wrapper). GNU tar's own defences would
// otherwise hide a hole in the guard.
//
// Safety: every absolute path in the archives points into the sandbox, which sits 128 folders deep in a
// temporary folder: a path climbs at most 3 levels per component list, 40 symlinks per lookup, so even a
// broken guard cannot reach above the temporary folder, which the snapshot covers whole.
//
// Runs: NETIMPORT_FUZZ_RUNS (default 200, about 3 s alone), NETIMPORT_FUZZ_SEED (default fixed; fast-check prints the seed
// and the shrunk counterexample on failure).
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { test } from "node:test";
import fc from "fast-check";
import { createTarUnpackSink, requireGnuTar } from "../../../runtime/tar-unpack-sink.ts";
import { END, entry, header, longLink, longName, pax } from "../../support/tar-build.ts";
import { tempDir } from "../../support/temp-dir.ts";
import { fileInodes, snapshot } from "../../support/tree-snapshot.ts";

const RUNS = Number(process.env.NETIMPORT_FUZZ_RUNS ?? 200);
const SEED = Number(process.env.NETIMPORT_FUZZ_SEED ?? 20250611);

const root = tempDir("netimport-tar-fuzz-");
const wrapper = join(root, "bin");
mkdirSync(wrapper);
writeFileSync(join(wrapper, "tar"), '#!/bin/sh\nexec /usr/bin/tar --absolute-names "$@"\n', { mode: 0o755 });
process.env.PATH = `${wrapper}:${process.env.PATH}`;
const deep = join(root, ...Array.from({ length: 128 }, () => "d"));
mkdirSync(deep, { recursive: true });

// ---- archives as data ----

/**
 * A path: relative to the target, under (or at) an earlier member's name (the serializer picks it by
 * index: writing through what the archive made is where escapes live), or absolute into the sandbox.
 */
type PathSpec =
  | { from: "target"; parts: string[] }
  | { from: "earlier"; index: number; parts: string[] }
  | { from: "outside" | "secret" | "parent"; parts: string[] };
type PaxHeader = { type: "x" | "g" | "X"; path?: PathSpec; linkpath?: PathSpec; size?: number };
type Item =
  | { kind: "file"; name: PathSpec; data: string }
  | { kind: "dir"; name: PathSpec }
  | { kind: "symlink"; name: PathSpec; target: PathSpec }
  | { kind: "hardlink"; name: PathSpec; target: PathSpec }
  | { kind: "pax"; headers: PaxHeader[] }
  | { kind: "long"; type: "L" | "K"; path: PathSpec }
  /** Members hidden where a reader that ignored some rule would take them for data (see serialize). */
  | { kind: "smuggle"; how: Smuggle; name: PathSpec; hidden: Item[] }
  /** A link, then something written through it: the shape of every escape (see chainItems). */
  | { kind: "chain"; link: "symlink" | "global-linkpath" | "x-linkpath" | "long-link" | "global-hardlink"; target: PathSpec;
      via: "direct" | "hardlink" | "pax-path" | "x-then-x"; then: "file" | "dir" | "symlink" | "hardlink"; first: PathSpec; second: PathSpec };
type Smuggle = "pax-size-0" | "pax-size-more" | "global-size" | "hard-link-size" | "symlink-data";

/** `arbitrary` with probability `p`, else undefined. */
const maybe = <T>(p: number, arbitrary: fc.Arbitrary<T>) =>
  fc.oneof({ weight: Math.round((1 - p) * 20), arbitrary: fc.constant(undefined) }, { weight: Math.round(p * 20), arbitrary });

const component = fc.oneof({ weight: 16, arbitrary: fc.constantFrom("fa", "fb") }, { weight: 1, arbitrary: fc.constantFrom("fc", ".") });
const plainPath = fc.array(component, { minLength: 1, maxLength: 2 }).map((parts): PathSpec => ({ from: "target", parts }));
const earlierPath = fc.record({ from: fc.constant("earlier" as const), index: fc.nat(7), parts: fc.array(fc.constantFrom("fa", "fb"), { maxLength: 1 }) });
const climbing = fc.array(fc.oneof({ weight: 3, arbitrary: fc.constantFrom("fa", "fb") }, { weight: 2, arbitrary: fc.constant("..") }), { minLength: 1, maxLength: 3 })
  .map((parts): PathSpec => ({ from: "target", parts }));
/** Absolute paths into the sandbox: folders, files, and a climb from there. */
const absolute = fc.constantFrom<PathSpec>(
  { from: "outside", parts: [] }, { from: "outside", parts: ["file"] }, { from: "outside", parts: ["fa"] },
  { from: "secret", parts: [] }, { from: "parent", parts: [] }, { from: "parent", parts: [".."] },
);
/** Member names: mostly harmless looking (a refused name ends the archive early), sometimes not. */
const name = fc.oneof({ weight: 10, arbitrary: plainPath }, { weight: 10, arbitrary: earlierPath }, { weight: 1, arbitrary: climbing }, { weight: 1, arbitrary: absolute });
/** Hidden members: hostile more often. */
const hostileName = fc.oneof({ weight: 2, arbitrary: earlierPath }, { weight: 1, arbitrary: climbing }, { weight: 1, arbitrary: absolute });
/** Link targets: anything goes. */
const target = fc.oneof({ weight: 2, arbitrary: plainPath }, { weight: 2, arbitrary: earlierPath }, { weight: 3, arbitrary: climbing }, { weight: 4, arbitrary: absolute });
const size = fc.constantFrom(0, 1, 512, 1024);

const members = (names: fc.Arbitrary<PathSpec>, targets: fc.Arbitrary<PathSpec> = target, data = fc.constantFrom("", "x", "y".repeat(600))): fc.Arbitrary<Item> => fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("file" as const), name: names, data }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("dir" as const), name: names }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("symlink" as const), name: names, target: targets }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("hardlink" as const), name: names, target: fc.oneof({ weight: 3, arbitrary: earlierPath }, { weight: 1, arbitrary: targets }) }) },
);
const metaWith = (names: fc.Arbitrary<PathSpec>, targets: fc.Arbitrary<PathSpec>): fc.Arbitrary<Item> => fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("pax" as const), headers: fc.array(
    fc.record({ type: fc.constantFrom("x" as const, "g" as const, "X" as const), path: maybe(0.3, names), linkpath: maybe(0.6, targets), size: maybe(0.1, size) }),
    { minLength: 1, maxLength: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("long" as const), type: fc.constant("L" as const), path: names }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("long" as const), type: fc.constant("K" as const), path: targets }) },
);
const chainTo = (target: fc.Arbitrary<PathSpec>): fc.Arbitrary<Item> => fc.record({
  kind: fc.constant("chain" as const),
  link: fc.constantFrom("symlink" as const, "global-linkpath" as const, "x-linkpath" as const, "long-link" as const, "global-hardlink" as const),
  target,
  via: fc.constantFrom("direct" as const, "hardlink" as const, "pax-path" as const, "x-then-x" as const),
  then: fc.constantFrom("file" as const, "dir" as const, "symlink" as const, "hardlink" as const),
  // Link names apart from the targets' alphabet: a link to itself only loops.
  first: fc.constantFrom<PathSpec>({ from: "target", parts: ["la"] }, { from: "target", parts: ["fa", "la"] }),
  second: fc.constantFrom<PathSpec>({ from: "target", parts: ["lb"] }, { from: "target", parts: ["fb", "lb"] }),
});
const smuggleOf = (hidden: fc.Arbitrary<Item[]>): fc.Arbitrary<Item> => fc.record({
  kind: fc.constant("smuggle" as const),
  how: fc.constantFrom<Smuggle>("pax-size-0", "pax-size-more", "global-size", "hard-link-size", "symlink-data"),
  name: plainPath,
  hidden,
});

/** Anything. */
const anything = fc.oneof(
  { weight: 4, arbitrary: members(name) }, { weight: 2, arbitrary: metaWith(name, target) }, { weight: 3, arbitrary: chainTo(target) },
  { weight: 2, arbitrary: smuggleOf(fc.array(fc.oneof(members(hostileName, target, fc.constant("")), chainTo(target)), { minLength: 1, maxLength: 2 })) },
);
/** Members, headers and smuggled members that stay inside. */
const inside = fc.oneof(plainPath, earlierPath);
const benign = fc.oneof(
  { weight: 4, arbitrary: members(fc.oneof(plainPath, earlierPath), inside) }, { weight: 2, arbitrary: metaWith(plainPath, inside) },
  { weight: 1, arbitrary: chainTo(inside) }, { weight: 1, arbitrary: smuggleOf(fc.array(members(inside, inside, fc.constant("")), { minLength: 1, maxLength: 2 })) },
);
/** One escape attempt: in plain sight, or smuggled in bytes a careless reader takes for data. */
const outsideFolder = fc.constantFrom<PathSpec>(
  { from: "outside", parts: [] }, { from: "outside", parts: ["fa"] }, { from: "parent", parts: [] }, { from: "parent", parts: [".."] },
  { from: "target", parts: [".."] }, { from: "target", parts: ["..", "outside"] },
);
const attack = fc.oneof(
  { weight: 2, arbitrary: chainTo(outsideFolder) },
  { weight: 1, arbitrary: members(fc.oneof(climbing, absolute), target) },
  { weight: 3, arbitrary: smuggleOf(fc.oneof(chainTo(outsideFolder), members(fc.oneof(climbing, absolute), target, fc.constant(""))).map((item) => [item])) },
);
/**
 * Archives: random ones, benign ones (mostly accepted: the property needs those), and benign ones with a
 * single attack, which a guard missing a single rule lets through whole (with several attacks, another
 * one would be refused and hide the hole).
 */
const archives = fc.oneof(
  { weight: 1, arbitrary: fc.array(anything, { minLength: 1, maxLength: 4 }) },
  { weight: 1, arbitrary: fc.array(benign, { minLength: 1, maxLength: 4 }) },
  { weight: 2, arbitrary: fc.tuple(fc.array(benign, { maxLength: 1 }), attack, fc.array(benign, { maxLength: 1 })).map(([before, one, after]) => [...before, one, ...after]) },
);
const chunking = fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 8 });

/**
 * A chain as members: a link named `first` to `target` (made directly, or with its target from a global
 * or extended pax header or a GNU long link; or a hard link given its target by a global header), renamed
 * or reached through a hard link as `second`, and a member written through it.
 */
function chainItems(chain: Extract<Item, { kind: "chain" }>): Item[] {
  const harmless: PathSpec = { from: "target", parts: ["fa"] };
  const items: Item[] = [];
  if (chain.link === "global-hardlink") {
    return [{ kind: "pax", headers: [{ type: "g", linkpath: chain.target }] }, { kind: "hardlink", name: chain.first, target: harmless }, { kind: "pax", headers: [{ type: "g" }] }];
  }
  const linkTarget = chain.link === "symlink" ? chain.target : harmless;
  if (chain.link === "global-linkpath") items.push({ kind: "pax", headers: [{ type: "g", linkpath: chain.target }] });
  if (chain.link === "x-linkpath") items.push({ kind: "pax", headers: [{ type: "x", linkpath: chain.target }] });
  if (chain.link === "long-link") items.push({ kind: "long", type: "K", path: chain.target });
  let through = chain.first;
  if (chain.via === "pax-path") items.push({ kind: "pax", headers: [{ type: "x", path: chain.first }] }); // the header's name is a decoy
  if (chain.via === "x-then-x") {
    items.push({ kind: "pax", headers: [{ type: "x", path: chain.second }, { type: "x" }] }); // the second 'x' replaces the first
    through = chain.first;
  }
  items.push({ kind: "symlink", name: chain.via === "pax-path" ? chain.second : chain.first, target: linkTarget });
  if (chain.link === "global-linkpath") items.push({ kind: "pax", headers: [{ type: "g" }] });
  if (chain.via === "hardlink") {
    items.push({ kind: "hardlink", name: chain.second, target: chain.first });
    through = chain.second;
  }
  const name: PathSpec = { from: "target", parts: [...through.parts, "fa"] };
  items.push(chain.then === "file" ? { kind: "file", name, data: "" } : chain.then === "dir" ? { kind: "dir", name }
    : chain.then === "symlink" ? { kind: "symlink", name, target: harmless } : { kind: "hardlink", name, target: chain.first });
  return items;
}

/** The bytes of `items`, absolute paths into `parent`; names too long for ustar get GNU long names. */
function serialize(items: Item[], parent: string, names: string[] = []): Buffer {
  const render = (spec: PathSpec): string => {
    if (spec.from === "target") return spec.parts.join("/");
    if (spec.from === "earlier") return [names[spec.index % Math.max(1, names.length)] ?? "fa", ...spec.parts].join("/");
    return [spec.from === "parent" ? parent : join(parent, spec.from), ...spec.parts].join("/");
  };
  const member = (name: string, fields: Parameters<typeof entry>[1] & { linkname?: string }) => {
    names.push(name);
    const linkname = fields.linkname ?? "";
    return Buffer.concat([
      ...(name.length > 100 ? [longName(name)] : []), ...(linkname.length > 100 ? [longLink(linkname)] : []),
      entry(name.slice(0, 100), { ...fields, linkname: linkname.slice(0, 100) }),
    ]);
  };
  const paxRecords = (header: PaxHeader): [string, string][] => [
    ...(header.path ? [["path", render(header.path)] as [string, string]] : []),
    ...(header.linkpath ? [["linkpath", render(header.linkpath)] as [string, string]] : []),
    ...(header.size === undefined ? [] : [["size", `${header.size}`] as [string, string]]),
  ];
  const parts = items.map((item): Buffer => {
    switch (item.kind) {
      case "file": return member(render(item.name), { data: item.data });
      case "dir": return member(`${render(item.name)}/`, { type: "5" });
      case "symlink": return member(render(item.name), { type: "2", linkname: render(item.target) });
      case "hardlink": return member(render(item.name), { type: "1", linkname: render(item.target) });
      case "pax": return Buffer.concat(item.headers.map((header) => pax(paxRecords(header), header.type)));
      case "long": return item.type === "L" ? longName(render(item.path)) : longLink(render(item.path));
      case "chain": return serialize(chainItems(item), parent, names).subarray(0, -END.length);
      case "smuggle": {
        const name = render(item.name);
        const hidden = serialize(item.hidden, parent, names).subarray(0, -END.length);
        switch (item.how) {
          case "pax-size-0": // the header's size covers the hidden members, the pax size (which counts) does not
            return Buffer.concat([pax({ size: "0" }), entry(name, { size: hidden.length, data: hidden })]);
          case "pax-size-more": // a decoy header the pax size makes data, whose size field covers the hidden members
            return Buffer.concat([pax({ size: "512" }), header({ name, size: 0 }), header({ name: "decoy", size: hidden.length }), hidden]);
          case "global-size": // a global size of 0 for every member (the hidden ones have no data), then reset
            return Buffer.concat([pax({ size: "0" }, "g"), entry(name, { size: hidden.length, data: hidden }), pax({ comment: "reset" }, "g")]);
          case "hard-link-size": // GNU tar ignores a hard link's size field
            return Buffer.concat([entry(name, { data: "x" }), entry(`${name}-link`, { type: "1", linkname: name, size: hidden.length, data: hidden })]);
          case "symlink-data": // GNU tar reads a symlink's data as headers when it creates the symlink
            return Buffer.concat([entry(name, { type: "2", linkname: "elsewhere", size: hidden.length, data: hidden })]);
        }
      }
    }
  });
  return Buffer.concat([...parts, END]);
}

/** What differs between two snapshots, one line a path. */
function changes(before: Map<string, string>, after: Map<string, string>): string[] {
  const lines: string[] = [];
  for (const [path, what] of after) {
    if (!before.has(path)) lines.push(`created ${shorter(path)}: ${what}`);
    else if (before.get(path) !== what) lines.push(`changed ${shorter(path)}: ${before.get(path)} => ${what}`);
  }
  for (const path of before.keys()) if (!after.has(path)) lines.push(`removed ${shorter(path)}`);
  return lines;
}
const shorter = (path: string) => path.replace(/^(d\/)+/, (deep) => `(${deep.length / 2} folders)/`);

test("tar sink: an accepted archive changes nothing outside its folder (property)", async (t) => {
  assert.equal(requireGnuTar().path, join(wrapper, "tar"), "the permissive wrapper");
  let run = 0;
  let accepted = 0;
  await fc.assert(fc.asyncProperty(archives, chunking, async (items, chunks) => {
    const parent = join(deep, `run-${run++}`);
    const target = join(parent, "target");
    mkdirSync(join(parent, "outside/fa"), { recursive: true });
    writeFileSync(join(parent, "outside/file"), "outside\n");
    writeFileSync(join(parent, "secret"), "secret\n");
    mkdirSync(target);
    try {
      const before = snapshot(root, [target]);
      const outsideFiles = fileInodes(root, [target]);
      const data = serialize(items, parent);
      const pieces = function* () {
        for (let at = 0, i = 0; at < data.length; i++) {
          const size = chunks[i % chunks.length]!;
          yield data.subarray(at, at + size);
          at += size;
        }
      };
      const outcome = await pipeline(Readable.from(pieces()), createTarUnpackSink(target, requireGnuTar())).then(() => "accepted", (error: Error) => `${error.name}: ${error.message}`);
      if (process.env.NETIMPORT_FUZZ_DEBUG) console.log(outcome.replace(/'[^']*'/g, "'…'").slice(0, 90));
      if (outcome !== "accepted") return;
      accepted++;
      assert.deepEqual(changes(before, snapshot(root, [target])), [], "nothing outside the target changed");
      const linked = [...fileInodes(target)].filter(([inode]) => outsideFiles.has(inode));
      assert.deepEqual(linked.map(([inode, path]) => `target/${path} is a hard link to ${shorter(outsideFiles.get(inode)!)}`), []);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  }), { numRuns: RUNS, seed: SEED });
  t.diagnostic(`${accepted} of ${RUNS} archives accepted (seed ${SEED})`);
  assert.ok(accepted >= RUNS / 20, `enough archives were accepted to mean something (${accepted} of ${RUNS})`);
});
