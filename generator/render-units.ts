// Render: the plan becomes unit files. Pure: returns file contents and links, writes nothing.
import attachTemplate from "../units-templates/attach.service.in";
import rootDeviceTemplate from "../units-templates/initrd-root-device.conf.in";
import pullTemplate from "../units-templates/pull.service.in";
import sysrootTemplate from "../units-templates/sysroot.mount.in";
import { localPath, type Actions, type DownloadSettings, type ImportRequest } from "./import-request.ts";
import { escapeSpecifiers, escapeUnitNamePart, fillTemplate, quoteExecArgument } from "./unit-text.ts";

export type GeneratorDir = "normal" | "early" | "late";

export interface UnitFile {
  dir: GeneratorDir;
  /** A unit name, or a drop-in path such as `initrd-root-device.target.d/50-root-device.conf`. */
  name: string;
  text: string;
}

/** `<dir>/<target>.<kind>/<unit>` → `../<unit>`, as systemd's generator_add_symlink() makes. */
export interface UnitLink {
  dir: GeneratorDir;
  target: string;
  kind: "wants" | "requires";
  unit: string;
}

export interface RenderedUnits {
  files: UnitFile[];
  links: UnitLink[];
}

export interface RenderOptions {
  executable: string;
  inInitrd: boolean;
  settings: DownloadSettings;
  actions: Actions;
}

/** Where `netimport attach` links the root file system's loop device. */
export const ROOT_LINK = "/run/netimport/root";

/**
 * Unit names are derived from the image's path, as systemd's own import units are, so they are
 * unique per target and say where the image goes: /run/machines/root.raw gives
 * `netimport-pull-run-machines-root.raw.service`.
 */
export function pullUnitName(request: ImportRequest): string {
  return `netimport-pull-${escapeUnitNamePart(localPath(request).slice(1))}.service`;
}

export function attachUnitName(request: ImportRequest): string {
  return `netimport-attach-${escapeUnitNamePart(localPath(request).slice(1))}.service`;
}

function isNetworkUrl(url: string): boolean {
  return !url.startsWith("file:");
}

/** The `netimport pull` command line: everything the download needs, nothing read at run time. */
export function pullCommand(request: ImportRequest, options: RenderOptions): string[] {
  const s = options.settings;
  const args = [options.executable, "pull", `--type=${request.type}`, `--verify=${request.verify}`];
  if (request.readOnly) args.push("--ro");
  if (s.keyring && request.verify === "signature") args.push(`--keyring=${s.keyring}`);
  for (const mirror of s.mirrors) args.push(`--mirror=${mirror}`);
  if (s.caFile) args.push(`--ca-file=${s.caFile}`);
  if (s.idleTimeoutSec !== undefined) args.push(`--idle-timeout=${s.idleTimeoutSec}`);
  if (s.retries !== undefined) args.push(`--retries=${s.retries}`);
  const proxy = request.remote.startsWith("https:") ? s.httpsProxy : s.httpProxy;
  if (proxy) args.push(`--proxy=${proxy}`);
  if (proxy && s.noProxy) args.push(`--no-proxy=${s.noProxy}`);
  args.push(request.remote, localPath(request));
  return args;
}

function execLine(args: string[]): string {
  return args.map(quoteExecArgument).join(" ");
}

function actionLines(actions: Actions): string[] {
  const lines: string[] = [];
  if (actions.success) lines.push(`SuccessAction=${actions.success}`);
  if (actions.failure) lines.push(`FailureAction=${actions.failure}`);
  return lines;
}

const EMERGENCY = ["OnFailure=emergency.target", "OnFailureJobMode=replace-irreversibly"];

function common(request: ImportRequest) {
  return {
    ORIGIN: `${request.origin.what} in ${request.origin.path}`,
    SOURCE_PATH: request.origin.path,
    CLASS: request.class,
    LOCAL: escapeSpecifiers(request.local),
    REMOTE: escapeSpecifiers(request.remote),
    DEST: escapeSpecifiers(localPath(request)),
  };
}

/**
 * @example renderUnits([request], { executable: "/usr/lib/netimport/netimport", inInitrd: true, … })
 *   // { files: [{ dir: "normal", name: "netimport-pull-root.service", text: "…" }, …], links: […] }
 */
export function renderUnits(requests: ImportRequest[], options: RenderOptions): RenderedUnits {
  const files: UnitFile[] = [];
  const links: UnitLink[] = [];
  for (const request of requests) renderRequest(request, options, files, links);
  return { files, links };
}

function renderRequest(request: ImportRequest, options: RenderOptions, files: UnitFile[], links: UnitLink[]): void {
  const pullUnit = pullUnitName(request);
  const attach = attachPlan(request);
  const attachUnit = attach ? attachUnitName(request) : undefined;
  const isRoot = request.root !== undefined;

  const pullDeps: string[] = [];
  if (isNetworkUrl(request.remote)) pullDeps.push("Wants=network-online.target", "After=network-online.target");
  if (attachUnit) pullDeps.push(`Before=${attachUnit}`);
  if (request.class === "sysext") pullDeps.push(`Before=${options.inInitrd ? "systemd-sysext-initrd.service " : ""}systemd-sysext.service`);
  if (request.class === "confext") pullDeps.push(`Before=${options.inInitrd ? "systemd-confext-initrd.service " : ""}systemd-confext.service`);
  if (isRoot) pullDeps.push("Before=initrd-root-device.target", ...EMERGENCY);
  else if (options.inInitrd) pullDeps.push("Before=initrd.target");
  pullDeps.push(...actionLines(options.actions));

  files.push({
    dir: "normal",
    name: pullUnit,
    text: fillTemplate(pullTemplate, {
      ...common(request),
      VERIFY: verifyDescription(request),
      DEPENDENCIES: pullDeps.join("\n"),
      EXEC: execLine(pullCommand(request, options)),
    }),
  });

  if (attach && attachUnit) {
    const attachDeps: string[] = [];
    if (isRoot) attachDeps.push("Before=initrd-root-device.target", ...EMERGENCY);
    else if (options.inInitrd) attachDeps.push("Before=initrd.target");
    const args = [options.executable, "attach", localPath(request), `--partition=${attach.partition}`, `--link=${attach.link}`];
    if (!request.readOnly) args.push("--rw");
    files.push({
      dir: "normal",
      name: attachUnit,
      text: fillTemplate(attachTemplate, {
        ...common(request),
        PARTITION: attach.partition === "root" ? "the root partition (or the whole image)" : attach.partition === "whole" ? "the whole image" : `partition ${attach.partition}`,
        MODE: request.readOnly ? "read-only" : "read-write",
        LINK: escapeSpecifiers(attach.link),
        PULL_UNIT: pullUnit,
        DEPENDENCIES: attachDeps.join("\n"),
        EXEC: execLine(args),
      }),
    });
  }

  if (request.root) {
    const sourceUnit = attachUnit ?? pullUnit;
    const bind = request.root.kind === "bind";
    files.push({
      dir: "early",
      name: "sysroot.mount",
      text: fillTemplate(sysrootTemplate, {
        ...common(request),
        SOURCE_UNIT: sourceUnit,
        WHAT: bind ? escapeSpecifiers(localPath(request)) : ROOT_LINK,
        OPTIONS: `${bind ? "bind," : ""}${request.readOnly ? "ro" : "rw"}`,
      }),
    });
    files.push({
      dir: "early",
      name: "initrd-root-device.target.d/50-root-device.conf",
      text: fillTemplate(rootDeviceTemplate, { ...common(request), SOURCE_UNIT: sourceUnit }),
    });
    links.push({ dir: "early", target: "initrd-root-fs.target", kind: "requires", unit: "sysroot.mount" });
  } else {
    const target = options.inInitrd ? "initrd.target" : "multi-user.target";
    links.push({ dir: "normal", target, kind: "wants", unit: pullUnit });
    if (attachUnit) links.push({ dir: "normal", target, kind: "wants", unit: attachUnit });
  }
}

function attachPlan(request: ImportRequest): { partition: "root" | "whole" | number; link: string } | undefined {
  if (request.root?.kind === "attach") return { partition: request.root.partition, link: ROOT_LINK };
  if (request.blockdev) return { partition: "whole", link: `/run/netimport/blockdev${localPath(request)}` };
  return undefined;
}

function verifyDescription(request: ImportRequest): string {
  switch (request.verify) {
    case "no": return "not verified";
    case "checksum": return "checked against the published SHA256 checksum";
    case "signature": return "checked against the published SHA256 checksum and its OpenPGP signature";
    default: return `checked against the pinned SHA256 ${request.verify.slice(7)}`;
  }
}
