// The limits of systemd and the kernel that every entry must fit, checked per entry before
// rendering: a name that is too long makes the write of that one unit fail (ENAMETOOLONG), and must
// cost neither the other entries nor the root file system's units.
import { localPath, type ImportRequest } from "./import-request.ts";
import { attachPlan, attachUnitName, pullUnitName } from "./unit-names.ts";

/** systemd's UNIT_NAME_MAX is 256 including the terminating NUL. */
const UNIT_NAME_MAX = 255;
/** NAME_MAX: the longest file name. */
const NAME_MAX = 255;
/** PATH_MAX is 4096 including the terminating NUL. */
const PATH_MAX = 4095;

function bytes(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

/**
 * Why the request cannot be written or run, or undefined when it fits. Checks the unit names it
 * makes (after systemd's escaping, where one byte may become four), the image's file name and its
 * full path. The runtime's temporary `.#NAME.xxxxxxxx` next to the image shortens NAME to fit
 * NAME_MAX, so only the final name counts.
 *
 * @example systemdLimitViolation({ local: " ".repeat(60), type: "raw", class: "machine", runtime: true, … })
 *   // "the LOCAL name would make the unit name netimport-pull-run-machines-\x20…\x20.raw.service
 *   //  280 bytes long, over systemd's limit of 255: use a shorter LOCAL name"
 */
export function systemdLimitViolation(request: ImportRequest): string | undefined {
  const path = localPath(request);
  const fileName = path.slice(path.lastIndexOf("/") + 1);
  if (bytes(fileName) > NAME_MAX) {
    return `the image file name ${fileName} would be ${bytes(fileName)} bytes long, over the limit of ${NAME_MAX} for a file name: use a shorter LOCAL name`;
  }
  const attach = attachPlan(request);
  for (const [what, long] of [["image path", path], ["loop device link", attach?.link]] as const) {
    if (long !== undefined && bytes(long) > PATH_MAX) {
      return `the ${what} ${long} would be ${bytes(long)} bytes long, over the limit of ${PATH_MAX} for a path: use a shorter LOCAL name`;
    }
  }
  // Attaching can only be dropped later (when another image is the root), never added.
  const units = attach ? [pullUnitName(request), attachUnitName(request)] : [pullUnitName(request)];
  for (const unit of units) {
    if (bytes(unit) > UNIT_NAME_MAX) {
      return `the LOCAL name would make the unit name ${unit} ${bytes(unit)} bytes long, over systemd's limit of ${UNIT_NAME_MAX}: use a shorter LOCAL name`;
    }
  }
  return undefined;
}
