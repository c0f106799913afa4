// What a tool left behind: is it the image, and how much space does it take on the file system?
import { createHash } from "node:crypto";
import { createReadStream, statSync } from "node:fs";

export type Written = { apparent: number; allocated: number; sha256: string };

/**
 * Size as `stat -c %s`, allocation as `stat -c %b*%B` (st_blocks is in 512-byte units), and content hash.
 * @example const { apparent, allocated } = await inspectOutput("/mnt/out/disk.raw");
 */
export async function inspectOutput(path: string): Promise<Written> {
  const stat = statSync(path);
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) hash.update(chunk as Buffer);
  return { apparent: stat.size, allocated: stat.blocks * 512, sha256: hash.digest("hex") };
}
