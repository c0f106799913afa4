// The names of the units a request makes. They are derived from the image's path, as systemd's own
// import units are, so they are unique per target and say where the image goes.
import { localPath, type ImportRequest } from "./import-request.ts";
import { escapeUnitNamePart } from "./unit-text.ts";

/** /run/machines/root.raw gives `netimport-pull-run-machines-root.raw.service`. */
export function pullUnitName(request: ImportRequest): string {
  return `netimport-pull-${escapeUnitNamePart(localPath(request).slice(1))}.service`;
}

/** /run/machines/root.raw gives `netimport-attach-run-machines-root.raw.service`. */
export function attachUnitName(request: ImportRequest): string {
  return `netimport-attach-${escapeUnitNamePart(localPath(request).slice(1))}.service`;
}

/** /run/machines/root.raw gives `netimport-lazy-run-machines-root.raw.service`. */
export function lazyUnitName(request: ImportRequest): string {
  return `netimport-lazy-${escapeUnitNamePart(localPath(request).slice(1))}.service`;
}

/** Where a lazy image's server keeps its run-time files: the device link and the PID file. */
const LAZY_DIR = "/run/netimport/lazy";

/** The link `netimport lazy` makes to the NBD device it serves the image on. */
export function lazyDeviceLink(request: ImportRequest): string {
  return `${LAZY_DIR}/${request.local}.nbd`;
}

/** Where a lazy image's server writes its PID (it runs outside its unit's control group). */
export function lazyPidFile(request: ImportRequest): string {
  return `${LAZY_DIR}/${request.local}.pid`;
}

/**
 * The prefix of the device-mapper linear devices `netimport attach` puts on a lazy image's NBD device,
 * one per partition (PREFIX-pN): their tables are what the server switches to the local copy.
 */
export const LAZY_MAPPER_PREFIX = "netimport-lazy";

/** Where `netimport attach` links the root file system's loop device. */
export const ROOT_LINK = "/run/netimport/root";

/** Where `netimport attach` links the root image's /usr partition, when it has one. */
export const USR_LINK = "/run/netimport/usr";

/** How a request's raw image is attached to a loop device, if it is. */
export interface AttachPlan {
  partition: "root" | "usr" | "whole" | number;
  link: string;
  /** For a DDI root: where its /usr partition is linked, when it has one. */
  usrLink?: string;
}

/**
 * A root image wired for attaching gets the root link (and, attached as a DDI, the /usr link); a /usr
 * image for root=tmpfs the /usr link; a `blockdev` image its own link.
 */
export function attachPlan(request: ImportRequest): AttachPlan | undefined {
  if (request.root?.kind === "attach") {
    return request.root.partition === "root" ? { partition: "root", link: ROOT_LINK, usrLink: USR_LINK } : { partition: request.root.partition, link: ROOT_LINK };
  }
  if (request.root?.kind === "usr") return { partition: "usr", link: USR_LINK };
  if (request.blockdev) return { partition: "whole", link: `/run/netimport/blockdev${localPath(request)}` };
  return undefined;
}

/** A DDI partition that may come with dm-verity. */
export type VerityPart = "root" | "usr";

/**
 * The unit that sets up dm-verity for the root image's root or /usr partition. There is one root image
 * per boot, so the names are fixed, like sysroot.mount's.
 */
export function verityUnitName(part: VerityPart): string {
  return `netimport-verity-${part}.service`;
}

/** The dm-verity device, /dev/mapper/NAME: not systemd's `root`/`usr`, which its generators may claim. */
export function verityDeviceName(part: VerityPart): string {
  return `netimport-${part}`;
}

export function partLink(part: VerityPart): string {
  return part === "root" ? ROOT_LINK : USR_LINK;
}
