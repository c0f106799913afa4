// Render: the plan becomes unit files. Pure: returns file contents and links, writes nothing.
import attachTemplate from "../units-templates/attach.service.in";
import rootDeviceTemplate from "../units-templates/initrd-root-device.conf.in";
import lazyTemplate from "../units-templates/lazy.service.in";
import pullTemplate from "../units-templates/pull.service.in";
import remountSysrootTemplate from "../units-templates/remount-sysroot.service.in";
import sysrootTemplate from "../units-templates/sysroot.mount.in";
import { isNewerThanSystemd252 } from "./emergency-action.ts";
import { isDdiWiring, localPath, type Actions, type DownloadSettings, type ImportRequest, type RootWiring } from "./import-request.ts";
import { lazyArguments, lazyCopyPath, pullArguments } from "./pull-arguments.ts";
import { usrUnits, verityUnit, veritysetupMask } from "./render-ddi.ts";
import { common, EMERGENCY, execLine } from "./render-parts.ts";
import { attachPlan, attachUnitName, LAZY_MAPPER_PREFIX, lazyDeviceLink, lazyPidFile, lazyUnitName, pullUnitName, ROOT_LINK, USR_LINK, verityDeviceName, verityUnitName, type AttachPlan } from "./unit-names.ts";
import { escapeSpecifiers, fillTemplate } from "./unit-text.ts";

export type GeneratorDir = "normal" | "early" | "late";

export interface UnitFile {
  dir: GeneratorDir;
  /** A unit name, or a drop-in path such as `initrd-root-device.target.d/50-root-device.conf`. */
  name: string;
  text: string;
  /** Instead of a file, a symlink to this path: `/dev/null` masks the unit (text is then empty). */
  symlink?: string;
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

/** Clears nosuid/nodev/noexec on a bind-mounted (tar) root. */
const REMOUNT_SYSROOT_UNIT = "netimport-remount-sysroot.service";

/**
 * The target a root image's download and attach come before: the root device, or with root=tmpfs
 * (where the image provides /usr only) the initrd's /usr.
 */
function bootTarget(wiring: RootWiring): string {
  return wiring.kind === "usr" ? "initrd-usr-fs.target" : "initrd-root-device.target";
}

/**
 * Whether the root partition is mounted read-only: as the request says, and always when roothash= pins
 * dm-verity for it (a verity device is read-only, as systemd 257's fstab-generator also concludes).
 */
function rootReadOnly(request: ImportRequest): boolean {
  return request.readOnly || (isDdiWiring(request.root) && request.root.roothash !== undefined);
}

/**
 * Whether an image with /usr but no root partition gets what root=tmpfs gives, an empty tmpfs at
 * /sysroot: for every DDI root, except when roothash= says there is a root partition (then such an
 * image is refused).
 */
function tmpfsRootFor(request: ImportRequest, attach: AttachPlan): boolean {
  return attach.usrLink !== undefined && !(isDdiWiring(request.root) && request.root.roothash);
}

/** `netimport attach`'s command line. */
function attachArguments(request: ImportRequest, attach: AttachPlan, executable: string): string[] {
  const image = request.lazy ? lazyDeviceLink(request) : localPath(request);
  const args = [executable, "attach", image, `--partition=${attach.partition}`, `--link=${attach.link}`];
  // A lazy image's partitions become device-mapper linear devices, whose tables the server later
  // switches to the local copy; read from the network, every block must be checked (verify=no aside).
  if (request.lazy) args.push(`--mapper-prefix=${LAZY_MAPPER_PREFIX}`, ...(request.verify === "no" ? [] : ["--require-verity"]));
  if (attach.usrLink) args.push(`--usr-link=${attach.usrLink}`);
  const wiring = request.root;
  if (tmpfsRootFor(request, attach)) args.push("--tmpfs-root=/sysroot");
  if (isDdiWiring(wiring) && wiring.roothash) args.push(`--roothash=${wiring.roothash}`);
  if ((isDdiWiring(wiring) || wiring?.kind === "usr") && wiring.usrhash) args.push(`--usrhash=${wiring.usrhash}`);
  // /usr alone is always read-only.
  if (attach.partition !== "usr" && !rootReadOnly(request)) args.push("--rw");
  return args;
}

function attachedWhat(attach: AttachPlan): string {
  switch (attach.partition) {
    case "root": return "the root partition (or the whole image)";
    case "usr": return "the /usr partition";
    case "whole": return "the whole image";
    default: return `partition ${attach.partition}`;
  }
}

/** What the attach unit's comment adds for a DDI: the /usr partition and what dm-verity changes. */
function attachNote(attach: AttachPlan, tmpfsRoot: boolean): string {
  if (attach.partition === "usr") {
    return [
      `# With a verity partition for /usr it links nothing: ${USR_LINK}.data and .hash (and .verity-sig`,
      `# when signed) are left for ${verityUnitName("usr")}, which makes the link.`,
    ].join("\n");
  }
  if (attach.partition !== "root") return "";
  return [
    `# Its /usr partition, when it has one, is attached read-only and linked at ${USR_LINK}.`,
    ...(tmpfsRoot ? [
      `# An image with /usr but no root partition gets an empty tmpfs mounted at /sysroot as its root`,
      `# (what root=tmpfs gives); sysroot.mount then finds /sysroot mounted and has nothing to do.`,
    ] : []),
    `# A partition with a verity partition is not linked: ${ROOT_LINK}.data and .hash (and .verity-sig`,
    `# when signed; likewise for /usr) are left for ${verityUnitName("root")} and`,
    `# ${verityUnitName("usr")}, which make the link.`,
  ].join("\n");
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
  const pullUnit = request.lazy ? lazyUnitName(request) : pullUnitName(request);
  const attach = attachPlan(request);
  const attachUnit = attach ? attachUnitName(request) : undefined;
  const wiring = request.root;

  const pullDeps: string[] = [];
  if (isNetworkUrl(request.remote)) pullDeps.push("Wants=network-online.target", "After=network-online.target");
  if (attachUnit) pullDeps.push(`Before=${attachUnit}`);
  if (request.class === "sysext") pullDeps.push(`Before=${options.inInitrd ? "systemd-sysext-initrd.service " : ""}systemd-sysext.service`);
  if (request.class === "confext") pullDeps.push(`Before=${options.inInitrd ? "systemd-confext-initrd.service " : ""}systemd-confext.service`);
  if (wiring) pullDeps.push(`Before=${bootTarget(wiring)}`, ...EMERGENCY);
  else if (options.inInitrd) pullDeps.push("Before=initrd.target");
  pullDeps.push(...actionLines(options.actions));

  const command = (request.lazy ? lazyArguments : pullArguments)(request, options.settings, options.executable);
  files.push({
    dir: "normal",
    name: pullUnit,
    text: fillTemplate(request.lazy ? lazyTemplate : pullTemplate, {
      ...common(request),
      ...(request.lazy ? lazyValues(request, options.settings) : { VERIFY: verifyDescription(request) }),
      SECRETS: secretsNote(command.secretFiles),
      DEPENDENCIES: pullDeps.join("\n"),
      EXEC: execLine(command.args),
    }),
  });

  if (attach && attachUnit) {
    const attachDeps: string[] = [];
    if (wiring) attachDeps.push(`Before=${bootTarget(wiring)}`, ...EMERGENCY);
    else if (options.inInitrd) attachDeps.push("Before=initrd.target");
    files.push({
      dir: "normal",
      name: attachUnit,
      text: fillTemplate(attachTemplate, {
        ...common(request),
        PARTITION: attachedWhat(attach),
        IMAGE: escapeSpecifiers(request.lazy ? `the NBD device at ${lazyDeviceLink(request)}` : localPath(request)),
        DEVICE_KIND: request.lazy ? "device-mapper linear devices" : "a loop device",
        MODE: attach.partition === "usr" || rootReadOnly(request) ? "read-only" : "read-write",
        LINK: escapeSpecifiers(attach.link),
        MORE: attachNote(attach, tmpfsRootFor(request, attach)),
        PULL_UNIT: pullUnit,
        DEPENDENCIES: attachDeps.join("\n"),
        EXEC: execLine(attachArguments(request, attach, options.executable)),
      }),
    });
  }

  if (wiring?.kind === "usr" && attachUnit) {
    // root=tmpfs: systemd's fstab-generator mounts the root; netimport only adds /usr.
    files.push(verityUnit(request, "usr", { executable: options.executable, attachUnit, hash: wiring.usrhash }));
    if (wiring.usrhash) files.push(veritysetupMask("usr"));
    const usr = usrUnits(request, attachUnit, "With root=tmpfs the root is fstab-generator's empty tmpfs and the image provides /usr");
    files.push(...usr.files);
    links.push(...usr.links);
  } else if (wiring) {
    const sourceUnit = attachUnit ?? pullUnit;
    const bind = wiring.kind === "bind";
    const ddi = isDdiWiring(wiring) && attachUnit !== undefined;
    const verityRoot = verityUnitName("root");
    // A verity failure must stop the mount, not race it; a skipped condition (no verity) satisfies Requires=.
    const verityDeps = ddi ? `Requires=${verityRoot}\nAfter=${verityRoot}` : "";
    // A tar root is a folder on /run (nosuid,nodev): as a root it must allow what a disk allows.
    const rootFlags = `${rootReadOnly(request) ? "ro" : "rw"}${bind ? ",dev,suid,exec" : ""}`;
    files.push({
      dir: "early",
      name: "sysroot.mount",
      text: fillTemplate(sysrootTemplate, {
        ...common(request),
        NOTE: ddi ? sysrootVerityNote(wiring) : "",
        SOURCE_UNIT: sourceUnit,
        VERITY: verityDeps,
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
      text: fillTemplate(rootDeviceTemplate, {
        ...common(request),
        MADE_BY: ddi ? `${sourceUnit},\n# and by ${verityRoot} when the image has a verity partition for it` : sourceUnit,
        SOURCE_UNIT: sourceUnit,
        VERITY: verityDeps,
      }),
    });
    links.push({ dir: "early", target: "initrd-root-fs.target", kind: "requires", unit: "sysroot.mount" });
    if (ddi) {
      files.push(verityUnit(request, "root", { executable: options.executable, attachUnit, hash: wiring.roothash }));
      files.push(verityUnit(request, "usr", { executable: options.executable, attachUnit, hash: wiring.usrhash }));
      if (wiring.roothash) files.push(veritysetupMask("root"));
      if (wiring.usrhash) files.push(veritysetupMask("usr"));
      const usr = usrUnits(request, attachUnit, wiring.usrhash ? "usrhash= says the image has a /usr partition" : undefined);
      files.push(...usr.files);
      links.push(...usr.links);
    }
  } else {
    const target = options.inInitrd ? "initrd.target" : "multi-user.target";
    links.push({ dir: "normal", target, kind: "wants", unit: pullUnit });
    if (attachUnit) links.push({ dir: "normal", target, kind: "wants", unit: attachUnit });
  }
}

/** What sysroot.mount's comment adds for a DDI: where its device comes from with dm-verity. */
function sysrootVerityNote(wiring: RootWiring): string {
  const pinned = isDdiWiring(wiring) && wiring.roothash !== undefined;
  const device = `/dev/mapper/${verityDeviceName("root")}`;
  return pinned
    ? `# roothash= asks for dm-verity: ${ROOT_LINK} is ${device}, made by\n# ${verityUnitName("root")}, and read-only, so the root is mounted read-only.`
    : [
        `# With a verity partition for the root partition, ${ROOT_LINK} is ${device},`,
        `# made by ${verityUnitName("root")}: a verity device is read-only, and mount(8), not`,
        `# given -w, then mounts it read-only.`,
      ].join("\n");
}

/** What the lazy unit's comments say besides the common values: where the device and the copy go, what is checked. */
function lazyValues(request: ImportRequest, settings: DownloadSettings): Record<string, string> {
  const unverified = request.verify === "no";
  return {
    DEVICE_LINK: escapeSpecifiers(lazyDeviceLink(request)),
    COPY: escapeSpecifiers(lazyCopyPath(request, settings)),
    PID_FILE: escapeSpecifiers(lazyPidFile(request)),
    VERIFY_WHEN: unverified ? "the copy is not checked as a whole (verify=no)." : `the complete copy is ${verifyDescription(request)}, loudly reported if it differs.`,
    VERITY_RULE: unverified
      ? "verify=no: an image without verity partitions is served unchecked."
      : "Every block read is checked by dm-verity: an image without verity partitions is refused.",
  };
}

function verifyDescription(request: ImportRequest): string {
  switch (request.verify) {
    case "no": return "not verified";
    case "checksum": return "checked against the published SHA256 checksum";
    case "signature": return "checked against the published SHA256 checksum and its OpenPGP signature";
    default: return `checked against the pinned SHA256 ${request.verify.slice(7)}`;
  }
}
