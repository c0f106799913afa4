// The units a DDI adds to the root file system: dm-verity for its root and /usr partitions, and its /usr
// partition at /sysroot/usr. Which of them run is decided at boot by the image itself (its partitions),
// except where the kernel command line pins a root hash or root=tmpfs needs /usr. Pure, like
// render-units.ts.
import sysrootUsrTemplate from "../units-templates/sysroot-usr.mount.in";
import sysusrUsrTemplate from "../units-templates/sysusr-usr.mount.in";
import verityTemplate from "../units-templates/verity.service.in";
import type { ImportRequest } from "./import-request.ts";
import { common, execLine } from "./render-parts.ts";
import type { RenderedUnits, UnitFile } from "./render-units.ts";
import { partLink, USR_LINK, verityDeviceName, verityUnitName, type VerityPart } from "./unit-names.ts";
import { fillTemplate } from "./unit-text.ts";
import type { HashKey } from "./verity-hash.ts";

/** The mount each verity device is set up for. */
const MOUNT_UNIT: Record<VerityPart, string> = { root: "sysroot.mount", usr: "sysusr-usr.mount" };
const HASH_KEY: Record<VerityPart, HashKey> = { root: "roothash", usr: "usrhash" };
const PART_NAME: Record<VerityPart, string> = { root: "root", usr: "/usr" };

export interface VerityUnitOptions {
  executable: string;
  attachUnit: string;
  /** The root hash pinned on the kernel command line, if it is. */
  hash: string | undefined;
}

/**
 * `netimport verity` for the root or /usr partition. Without a pinned hash it runs only when `netimport
 * attach` found a verity partition for it (LINK.hash exists); with one, always, so that an image
 * without verity fails instead of being mounted unverified.
 *
 * @example verityUnit(request, "root", { executable: "/usr/lib/netimport/netimport", attachUnit, hash: undefined })
 *   // { dir: "normal", name: "netimport-verity-root.service", text: "…ConditionPathExists=/run/netimport/root.hash…" }
 */
export function verityUnit(request: ImportRequest, part: VerityPart, options: VerityUnitOptions): UnitFile {
  const link = partLink(part);
  const device = verityDeviceName(part);
  const name = PART_NAME[part];
  const key = HASH_KEY[part];
  const args = [options.executable, "verity", device, `--data=${link}.data`, `--hash=${link}.hash`];
  if (options.hash) args.push(`--roothash=${options.hash}`);
  args.push(`--signature=${link}.verity-sig`, `--link=${link}`);
  return {
    dir: "normal",
    name: verityUnitName(part),
    text: fillTemplate(verityTemplate, {
      ...common(request),
      PART: name,
      LINK: link,
      DEVICE: device,
      HASH_SOURCE: options.hash
        ? `# The root hash is pinned by ${key}= on the kernel command line.`
        : [
            `# The root hash is taken from the signature at ${link}.verity-sig when it verifies`,
            `# against a certificate in /etc/verity.d (an image without a signature partition leaves`,
            `# no such file, and is unsigned).`,
          ].join("\n"),
      WHEN: options.hash
        ? `# ${key}= asks for dm-verity, so this always runs: an image without a verity partition for\n# its ${name} partition fails here instead of being mounted unverified.`
        : `# It only runs when the image has a verity partition for its ${name} partition\n# (${link}.hash exists); without one, ${link} is the partition itself.`,
      CONDITION: options.hash ? "" : `ConditionPathExists=${link}.hash`,
      ATTACH_UNIT: options.attachUnit,
      MOUNT_UNIT: MOUNT_UNIT[part],
      EXEC: execLine(args),
    }),
  };
}

/**
 * Masks systemd's own `systemd-veritysetup@root.service` (or @usr): for roothash=/usrhash=, systemd's
 * veritysetup-generator (in initrds that carry it, mkosi's among them) writes a unit that waits for
 * the partitions under /dev/disk/by-partuuid/, which loop devices over single partitions never get:
 * sysinit.target would wait 90 s for it and the unit would fail. netimport's verity unit does that
 * job. The mask goes to the early folder, which comes before the normal folder the generator writes to.
 */
export function veritysetupMask(part: VerityPart): UnitFile {
  return { dir: "early", name: `systemd-veritysetup@${part}.service`, text: "", symlink: "/dev/null" };
}

/**
 * /usr from the image, as systemd's fstab-generator mounts it in the initrd: the partition at
 * /sysusr/usr (for initrd-usr-fs.target), bind-mounted to /sysroot/usr (for initrd-fs.target). In the
 * early folder, under the names fstab-generator uses, so that ours replace the ones it writes for
 * usrhash=. `always` says why the image must have /usr; without it the units run only when it has.
 */
export function usrUnits(request: ImportRequest, attachUnit: string, always: string | undefined): RenderedUnits {
  const when = always
    ? `# ${always}, so it always runs.`
    : `# It only runs when the image has a /usr partition: then ${USR_LINK} exists, linked by\n# netimport attach or, with dm-verity, by ${verityUnitName("usr")}.`;
  const values = {
    ...common(request),
    WHEN: when,
    CONDITION: always ? "" : `ConditionPathExists=${USR_LINK}`,
    ATTACH_UNIT: attachUnit,
    VERITY_UNIT: verityUnitName("usr"),
    LINK: USR_LINK,
  };
  return {
    files: [
      { dir: "early", name: "sysusr-usr.mount", text: fillTemplate(sysusrUsrTemplate, values) },
      { dir: "early", name: "sysroot-usr.mount", text: fillTemplate(sysrootUsrTemplate, values) },
    ],
    links: [
      { dir: "early", target: "initrd-usr-fs.target", kind: "requires", unit: "sysusr-usr.mount" },
      { dir: "early", target: "initrd-fs.target", kind: "requires", unit: "sysroot-usr.mount" },
    ],
  };
}
