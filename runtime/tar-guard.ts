// Reads tar headers as the stream goes by and refuses entries that would land outside the target folder:
// absolute names, names with "..", hard links to such names, and any path that goes THROUGH a symlink the
// archive made pointing outside (absolute, or relative with too many ".."). A pre-scan is impossible on a
// stream, so the check runs on each header before the bytes are passed on to the extractor.
// Formats: ustar (name + prefix), GNU (././@LongLink 'L'/'K', old sparse extension headers), pax ('x').
// Absolute symlinks themselves are fine (a root file system has /etc/mtab -> /proc/self/mounts); only
// writing through them is refused.

const BLOCK = 512;
const MAX_META = 1024 * 1024; // a long name or pax header larger than this is not a real archive

export class TarEscapeError extends Error {}

interface PendingMeta { path?: string; linkpath?: string }

function octal(field: Buffer): number {
  if (field[0]! & 0x80) {
    // GNU base-256: big-endian binary in the remaining bytes.
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  const text = field.toString("latin1").replace(/\0.*$/s, "").trim();
  return text ? parseInt(text, 8) : 0;
}

function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString("utf8");
}

function parsePax(data: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0) break;
    const length = parseInt(data.toString("latin1", at, space), 10);
    if (!(length > 0)) break;
    const record = data.toString("utf8", space + 1, at + length - 1); // drop the trailing newline
    const eq = record.indexOf("=");
    if (eq > 0) records[record.slice(0, eq)] = record.slice(eq + 1);
    at += length;
  }
  return records;
}

/**
 * Tracks the archive's symlinks and checks each entry's path.
 *
 * ```ts
 * const guard = new TarGuard();
 * transform._transform = (chunk, _, cb) => { try { guard.push(chunk); cb(null, chunk); } catch (e) { cb(e); } };
 * ```
 */
export class TarGuard {
  #symlinks = new Map<string, string>();
  #header = Buffer.alloc(BLOCK);
  #headerFill = 0;
  #skip = 0;                      // data bytes (with padding) still to pass before the next header
  #meta: { kind: "L" | "K" | "x"; size: number; parts: Buffer[]; got: number; padded: number } | undefined;
  #sparseExtensions = false;
  #pending: PendingMeta = {};
  #ended = false;
  #endBlocks = 0;
  entries = 0;

  #failure: Error | undefined;

  /** Checks the headers in `chunk`; throws TarEscapeError for an entry that escapes, and again on every later push. */
  push(chunk: Buffer): void {
    if (this.#failure) throw this.#failure;
    try {
      this.#push(chunk);
    } catch (error) {
      this.#failure = error as Error;
      throw error;
    }
  }

  #push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.#ended) {
      if (this.#meta) {
        const meta = this.#meta;
        const take = Math.min(meta.padded - meta.got, chunk.length - at);
        meta.parts.push(chunk.subarray(at, at + take));
        meta.got += take;
        at += take;
        if (meta.got === meta.padded) {
          this.#meta = undefined;
          this.#metaDone(meta.kind, Buffer.concat(meta.parts).subarray(0, meta.size));
        }
        continue;
      }
      if (this.#skip > 0) {
        const take = Math.min(this.#skip, chunk.length - at);
        this.#skip -= take;
        at += take;
        continue;
      }
      const take = Math.min(BLOCK - this.#headerFill, chunk.length - at);
      chunk.copy(this.#header, this.#headerFill, at, at + take);
      this.#headerFill += take;
      at += take;
      if (this.#headerFill === BLOCK) {
        this.#headerFill = 0;
        this.#onHeader(this.#header);
      }
    }
  }

  #metaDone(kind: "L" | "K" | "x", data: Buffer): void {
    if (kind === "L") this.#pending.path = cString(data);
    else if (kind === "K") this.#pending.linkpath = cString(data);
    else {
      const pax = parsePax(data);
      if (pax.path !== undefined) this.#pending.path = pax.path;
      if (pax.linkpath !== undefined) this.#pending.linkpath = pax.linkpath;
    }
  }

  #onHeader(header: Buffer): void {
    if (this.#sparseExtensions) {
      // GNU old sparse format: 21 more sparse entries per block, flag at 504.
      this.#sparseExtensions = header[504] !== 0;
      return;
    }
    if (header.every((byte) => byte === 0)) {
      // End of archive (two zero blocks; one is enough to know no header follows that we would check).
      if (++this.#endBlocks >= 2) this.#ended = true;
      return;
    }
    this.#endBlocks = 0;
    const sum = octal(header.subarray(148, 156));
    let unsigned = 0;
    let signed = 0; // some old tars summed signed chars
    for (let i = 0; i < BLOCK; i++) {
      const byte = i >= 148 && i < 156 ? 0x20 : header[i]!;
      unsigned += byte;
      signed += byte > 127 ? byte - 256 : byte;
    }
    if (sum !== unsigned && sum !== signed) throw new Error(`tar stream is corrupt: header checksum mismatch after ${this.entries} entries`);
    const type = String.fromCharCode(header[156]! || 0x30);
    const size = octal(header.subarray(124, 136));
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (type === "L" || type === "K" || type === "x") {
      if (size > MAX_META) throw new Error(`tar stream is corrupt: a ${type} header of ${size} bytes`);
      this.#meta = { kind: type, size, parts: [], got: 0, padded };
      if (padded === 0) { this.#meta = undefined; this.#metaDone(type, Buffer.alloc(0)); }
      return;
    }
    if (type === "g") { this.#skip = padded; return; } // pax global header: no per-entry path
    const ustar = header.toString("latin1", 257, 263) === "ustar\0";
    const prefix = ustar ? cString(header.subarray(345, 500)) : "";
    const rawName = cString(header.subarray(0, 100));
    const name = this.#pending.path ?? (prefix ? `${prefix}/${rawName}` : rawName);
    const linkname = this.#pending.linkpath ?? cString(header.subarray(157, 257));
    this.#pending = {};
    this.entries++;
    this.#check(type, name, linkname);
    if (type === "S" && header[482] !== 0) this.#sparseExtensions = true;
    // Links, devices, fifos and directories carry no data whatever their size field says (except in pax/GNU
    // "hard link with data", which tar extractors ignore too); regular files and sparse files do.
    this.#skip = type === "1" || type === "2" || type === "3" || type === "4" || type === "5" || type === "6" ? 0 : padded;
  }

  #check(type: string, name: string, linkname: string): void {
    const parts = this.#components(name, "entry");
    const path = parts.join("/");
    if (parts.length > 1) this.#resolveParents(parts, name);
    if (type === "1") {
      const target = this.#components(linkname, "hard link target");
      if (target.length > 1) this.#resolveParents(target, linkname);
    }
    if (type === "2") this.#symlinks.set(path, linkname);
    else this.#symlinks.delete(path);
  }

  /** Splits a member name into components, refusing absolute names and "..". */
  #components(name: string, what: string): string[] {
    if (name.startsWith("/")) throw new TarEscapeError(`tar ${what} '${name}' is an absolute path: refusing to unpack it`);
    const parts = name.split("/").filter((part) => part !== "" && part !== ".");
    if (parts.includes("..")) throw new TarEscapeError(`tar ${what} '${name}' contains '..': refusing to unpack it`);
    return parts;
  }

  /** Follows the archive's symlinks through the parent folders of `parts`; throws if that leaves the folder. */
  #resolveParents(parts: string[], name: string): void {
    const resolved: string[] = [];
    const queue = parts.slice(0, -1);
    let hops = 0;
    while (queue.length) {
      const part = queue.shift()!;
      if (part === "" || part === ".") continue;
      if (part === "..") {
        if (resolved.length === 0) throw new TarEscapeError(`tar entry '${name}' would be written through symlinks that point outside the target folder`);
        resolved.pop();
        continue;
      }
      const here = [...resolved, part].join("/");
      const target = this.#symlinks.get(here);
      if (target === undefined) {
        resolved.push(part);
        continue;
      }
      if (++hops > 40) throw new TarEscapeError(`tar entry '${name}' goes through too many symlinks`);
      if (target.startsWith("/") || !this.#staysInside(resolved.length, target)) {
        throw new TarEscapeError(`tar entry '${name}' would be written through the symlink '${here}' -> '${target}', which points outside the target folder`);
      }
      // The target replaces the link, relative to the link's folder; it may go through other symlinks.
      queue.unshift(...target.split("/"));
    }
  }

  /** Lexically, whether a relative target from a folder `depth` deep stays inside (a quick, clear error). */
  #staysInside(depth: number, target: string): boolean {
    for (const step of target.split("/")) {
      if (step === "..") depth--;
      else if (step !== "" && step !== ".") depth++;
      if (depth < 0) return false;
    }
    return true;
  }
}
