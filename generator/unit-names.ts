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

/** Where `netimport attach` links the root file system's loop device. */
export const ROOT_LINK = "/run/netimport/root";

/** How a request's raw image is attached to a loop device, if it is. */
export interface AttachPlan {
  partition: "root" | "whole" | number;
  link: string;
}

/** A root image wired for attaching gets the root link; a `blockdev` image its own link. */
export function attachPlan(request: ImportRequest): AttachPlan | undefined {
  if (request.root?.kind === "attach") return { partition: request.root.partition, link: ROOT_LINK };
  if (request.blockdev) return { partition: "whole", link: `/run/netimport/blockdev${localPath(request)}` };
  return undefined;
}
