// A device's major:minor from stat()'s rdev, decoded as glibc's major()/minor() do: the kernel's
// 32-bit dev_t (12-bit major, 20-bit minor) is spread over a 64-bit number, major in bits 8–19 and
// 32–43, minor in bits 0–7 and 12–31. Device-mapper tables and /sys/dev/block/ name devices so ("7:3").
import { statSync, type BigIntStats, type Stats } from "node:fs";

export interface DeviceNumber {
  major: number;
  minor: number;
}

/**
 * The device number of a device node: a path, or what stat() returned for it.
 *
 * ```ts
 * deviceNumberOf("/dev/null");                    // { major: 1, minor: 3 }
 * deviceNumberOf(await stat("/dev/loop3"));       // { major: 7, minor: 3 }
 * ```
 */
export function deviceNumberOf(device: string | Stats | BigIntStats): DeviceNumber {
  const info = typeof device === "string" ? statSync(device, { bigint: true }) : device;
  if (!info.isBlockDevice() && !info.isCharacterDevice()) {
    throw new Error(`${typeof device === "string" ? device : "that file"} is not a device node`);
  }
  const rdev = BigInt(info.rdev);
  // glibc's masks are 32-bit (~0xfff is 0xfffff000 there); BigInt's ~ has no width and would let the
  // major's high bits into the minor.
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n);
  return { major: Number(major), minor: Number(minor) };
}

/** "MAJ:MIN", as device-mapper tables and /sys/dev/block/ name a device. */
export function formatDeviceNumber({ major, minor }: DeviceNumber): string {
  return `${major}:${minor}`;
}
