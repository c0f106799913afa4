// Render: the plan becomes unit files. Pure: returns file contents and links, writes nothing.
import attachTemplate from "../units-templates/attach.service.in";
import rootDeviceTemplate from "../units-templates/initrd-root-device.conf.in";
import pullTemplate from "../units-templates/pull.service.in";
import remountSysrootTemplate from "../units-templates/remount-sysroot.service.in";
import sysrootTemplate from "../units-templates/sysroot.mount.in";
import { isNewerThanSystemd252 } from "./emergency-action.ts";
import { localPath, type Actions, type DownloadSettings, type ImportRequest } from "./import-request.ts";
import { pullArguments } from "./pull-arguments.ts";
import { redactUrl } from "./redact.ts";
import { attachPlan, attachUnitName, pullUnitName, ROOT_LINK } from "./unit-names.ts";
import { escapeSpecifiers, fillTemplate, quoteExecArgument } from "./unit-text.ts";

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

function isNetworkUrl(url: string): boolean {
  return !url.startsWith("file:");
}

function execLine(args: string[]): string {
  return args.map(quoteExecArgument).join(" ");
}

function actionLines(actions: Actions): string[] {
  const lines: string[] = [];
  for (const [key, action] of [["SuccessAction", actions.success], ["FailureAction", actions.failure]] as const) {
    if (!action) continue;
    if (isNewerThanSystemd252(action)) lines.push(`# ${key}=${action} is newer than systemd 252: a systemd that does not know it ignores it with a warning.`);
    lines.push(`${key}=${action}`);
  }
  return lines;
}

/** The pull unit's note on where the credentials of its redacted URLs come from, if it has any. */
function secretsNote(secretFiles: readonly string[]): string {
  if (secretFiles.length === 0) return "";
  const files = secretFiles.length === 1 ? secretFiles[0] : `${secretFiles.slice(0, -1).join(", ")} and ${secretFiles.at(-1)}`;
  return `# Credentials in the URLs shown as *** are read at run time from ${files}, not written here.`;
}

const EMERGENCY = ["OnFailure=emergency.target", "OnFailureJobMode=replace-irreversibly"];

/** Clears nosuid/nodev/noexec on a bind-mounted (tar) root. */
const REMOUNT_SYSROOT_UNIT = "netimport-remount-sysroot.service";

function common(request: ImportRequest) {
  return {
    ORIGIN: `${request.origin.what} in ${request.origin.path}`,
    // SourcePath= expands specifiers: a drop-in named 50-%n.conf must stay itself.
    SOURCE_PATH: escapeSpecifiers(request.origin.path),
    CLASS: request.class,
    LOCAL: escapeSpecifiers(request.local),
    REMOTE: escapeSpecifiers(redactUrl(request.remote)),
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

  const pull = pullArguments(request, options.settings, options.executable);
  files.push({
    dir: "normal",
    name: pullUnit,
    text: fillTemplate(pullTemplate, {
      ...common(request),
      VERIFY: verifyDescription(request),
      SECRETS: secretsNote(pull.secretFiles),
      DEPENDENCIES: pullDeps.join("\n"),
      EXEC: execLine(pull.args),
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
    // A tar root is a folder on /run (nosuid,nodev): as a root it must allow what a disk allows.
    const rootFlags = `${request.readOnly ? "ro" : "rw"}${bind ? ",dev,suid,exec" : ""}`;
    files.push({
      dir: "early",
      name: "sysroot.mount",
      text: fillTemplate(sysrootTemplate, {
        ...common(request),
        SOURCE_UNIT: sourceUnit,
        WHAT: bind ? escapeSpecifiers(localPath(request)) : ROOT_LINK,
        OPTIONS: `${bind ? "bind," : ""}${rootFlags}`,
      }),
    });
    if (bind) {
      files.push({
        dir: "early",
        name: REMOUNT_SYSROOT_UNIT,
        text: fillTemplate(remountSysrootTemplate, { ...common(request), OPTIONS: rootFlags }),
      });
      links.push({ dir: "early", target: "initrd-root-fs.target", kind: "requires", unit: REMOUNT_SYSROOT_UNIT });
    }
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

function verifyDescription(request: ImportRequest): string {
  switch (request.verify) {
    case "no": return "not verified";
    case "checksum": return "checked against the published SHA256 checksum";
    case "signature": return "checked against the published SHA256 checksum and its OpenPGP signature";
    default: return `checked against the pinned SHA256 ${request.verify.slice(7)}`;
  }
}
