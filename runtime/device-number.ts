// A device's major:minor from stat()'s rdev, decoded as glibc's major()/minor() do: the kernel's
// 32-bit dev_t (12-bit major, 20-bit minor) is spread over a 64-bit number, major in bits 8–19 and
// 32–43, minor in bits 0–7 and 12–31. Device-mapper tables name devices so ("7:3").
import type { Stats } from "node:fs";

export interface DeviceNumber {
  major: number;
  minor: number;
}

/**
 * @example deviceNumberOf(statSync("/dev/null")) // { major: 1, minor: 3 }
 */
export function deviceNumberOf(info: Pick<Stats, "rdev">): DeviceNumber {
  const rdev = BigInt(info.rdev);
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

/** "MAJ:MIN", as device-mapper tables and /sys/dev/block/ name a device. */
export function formatDeviceNumber({ major, minor }: DeviceNumber): string {
  return `${major}:${minor}`;
}
