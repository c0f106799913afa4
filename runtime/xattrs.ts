// Extended attributes, through the attr package's setfattr/getfattr: Node has no xattr API, and a
// native addon cannot ride in a single executable. Values travel base64-encoded (`0s…`), so no byte
// of them is ever interpreted by a shell or by the tools' own escaping.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { findExecutable } from "./system-tools.ts";

const run = promisify(execFile);

/** The file system, or the system (no setfattr), cannot keep user xattrs here. */
export class XattrsUnsupported extends Error {
  constructor(message: string) {
    super(message);
    this.name = "XattrsUnsupported";
  }
}

/**
 * Sets user xattrs on `path` (never following a symlink). Throws XattrsUnsupported when setfattr is
 * missing or the file system refuses user xattrs, and an Error for anything else.
 *
 * @example await setXattrs("/run/machines/.#os.raw.1a2b3c4d", { "user.source_url": "https://o/os.raw" });
 */
export async function setXattrs(path: string, attributes: Record<string, string>): Promise<void> {
  const setfattr = findExecutable("setfattr");
  if (!setfattr) throw new XattrsUnsupported("setfattr is not installed");
  for (const [name, value] of Object.entries(attributes)) {
    try {
      await run(setfattr, ["--no-dereference", "-n", name, "-v", `0s${Buffer.from(value).toString("base64")}`, "--", path]);
    } catch (error) {
      const stderr = String((error as { stderr?: string }).stderr ?? "");
      if (/not supported/i.test(stderr)) throw new XattrsUnsupported(`${path}: user xattrs are not supported here`);
      throw new Error(`cannot set ${name} on ${path}: ${stderr.trim() || (error as Error).message}`);
    }
  }
}

/** A user xattr of `path` (never following a symlink), or undefined when it has none or it cannot be read. */
export async function getXattr(path: string, name: string): Promise<string | undefined> {
  const getfattr = findExecutable("getfattr");
  if (!getfattr) return undefined;
  try {
    const { stdout } = await run(getfattr, ["--no-dereference", "--absolute-names", "-e", "base64", "-n", name, "--", path], { encoding: "utf8" });
    const value = /^[^=\n]+=0s([A-Za-z0-9+/=]*)$/m.exec(stdout)?.[1];
    return value === undefined ? undefined : Buffer.from(value, "base64").toString("utf8");
  } catch {
    return undefined;
  }
}
