// Reads tar headers as the stream goes by, at exactly the places GNU tar 1.34 reads them when it extracts,
// and refuses entries that would land outside the target folder: absolute names, names with "..", hard
// links to such names, and any path that goes THROUGH a symlink the archive made pointing outside
// (absolute, or relative with too many ".."). A pre-scan is impossible on a stream, so each header is
// checked before its bytes are passed on to tar.
//
// Agreeing with GNU tar on where every header is matters more than any single rule: a header the guard
// takes for file data would reach tar unchecked. So the guard follows GNU tar's own reading (src/list.c
// read_header and from_header, src/xheader.c, src/extract.c, src/sparse.c), and wherever GNU tar's
// position depends on something the guard cannot know (whether an extraction succeeds, say), or the
// archive is one no sane tool writes, it refuses the archive rather than guess.
//
// Absolute symlinks themselves are fine (a root file system has /etc/mtab -> /proc/self/mounts); only
// writing through them is refused. Memory: one entry per symlink, whatever the number of entries.

const BLOCK = 512;
const MAX_META = 1024 * 1024; // a long name or pax header larger than this is not a real archive
const MAX_SYMLINK_TARGET = 4095; // symlinkat() fails beyond (PATH_MAX), and tar would go on without the link
const MAX_HOPS = 40; // the kernel's limit of symlinks in one path (ELOOP)

/** The archive has an entry that would be written outside the target folder. */
class TarEscapeError extends Error {
  override name = "TarEscapeError";
}

/** The archive is damaged, or one whose reading by GNU tar the guard cannot be sure of. */
class TarFormatError extends Error {
  override name = "TarFormatError";
}

/** GNU tar's from_header() (src/list.c): a number field, or undefined where GNU tar rejects it. */
function headerNumber(field: Buffer, octalOnly: boolean): number | undefined {
  const isSpace = (byte: number | undefined) => byte === 0x20 || (byte !== undefined && byte >= 0x09 && byte <= 0x0d);
  const isOctal = (byte: number | undefined) => byte !== undefined && byte >= 0x30 && byte <= 0x37;
  let at = field[0] === 0 ? 1 : 0; // "buggy tar of unknown vintage" with a leading NUL
  while (isSpace(field[at])) at++; // older tars pad with leading spaces
  if (at >= field.length) return undefined; // all blanks
  let value = 0n;
  if (isOctal(field[at])) {
    while (isOctal(field[at])) value = value * 8n + BigInt(field[at++]! - 0x30);
  } else if (octalOnly) {
    // the checksum field: nothing else is accepted, and an empty field reads as 0
  } else if (field[at] === 0x80 && at <= field.length - 2) {
    // GNU base-256 (positive; 0xff, a negative number, is never a valid size)
    value = BigInt(field[at++]! & 0x3f);
    while (at < field.length) value = value * 256n + BigInt(field[at++]!);
  } else if (field[at] !== 0 && !isSpace(field[at])) {
    return undefined; // base-64 (tar 1.13.6 to 1.13.11), negative base-256, or garbage
  }
  if (at < field.length && field[at] !== 0 && !isSpace(field[at])) return undefined;
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined;
}

/** The bytes up to the first NUL, as GNU tar reads a name (one char per byte: names are bytes, not text). */
function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.toString("latin1", 0, end < 0 ? field.length : end);
}

/** A name for messages: the bytes as UTF-8. */
const show = (name: string) => Buffer.from(name, "latin1").toString("utf8");

const padded = (size: number) => Math.ceil(size / BLOCK) * BLOCK;

/** A pax decimal number as GNU tar's decode_num() accepts it, else undefined. */
function paxNumber(value: string): number | undefined {
  return /^[0-9]+$/.test(value) && Number(value) <= Number.MAX_SAFE_INTEGER ? Number(value) : undefined;
}

/**
 * Splits pax header data into records as GNU tar's decode_record() (src/xheader.c) does: blanks may precede
 * the length and the keyword; a NUL or the end where a record would start ends the list quietly. A
 * malformed record makes GNU tar stop there with an error, so the guard refuses it.
 */
function paxRecords(data: Buffer): [string, string][] {
  const records: [string, string][] = [];
  let start = 0;
  for (;;) {
    let at = start;
    while (data[at] === 0x20 || data[at] === 0x09) at++;
    if (at >= data.length || data[at] === 0) return records;
    const digits = /^[0-9]+/.exec(data.toString("latin1", at, Math.min(data.length, at + 20)))?.[0];
    if (!digits) throw new TarFormatError("tar stream is corrupt: a pax record without its length");
    const length = Number(digits);
    const next = start + length;
    if (length > data.length - start) throw new TarFormatError("tar stream is corrupt: a pax record longer than its header");
    at += digits.length;
    const keyStart = at;
    while (data[at] === 0x20 || data[at] === 0x09) at++;
    if (at === keyStart) throw new TarFormatError("tar stream is corrupt: a pax record without a blank after its length");
    let equals = at;
    while (equals < data.length && data[equals] !== 0x3d && data[equals] !== 0) equals++; // strchr() stops at a NUL
    if (data[equals] !== 0x3d || equals >= next || data[next - 1] !== 0x0a) {
      throw new TarFormatError("tar stream is corrupt: a malformed pax record");
    }
    // Decoders read the value as a C string: it ends at its first NUL.
    records.push([data.toString("latin1", at, equals), cString(data.subarray(equals + 1, next - 1))]);
    start = next;
  }
}

/** pax keywords that move data or names; every other keyword changes only metadata. */
const PAX_SPARSE_0 = new Set(["GNU.sparse.numblocks", "GNU.sparse.offset", "GNU.sparse.numbytes", "GNU.sparse.map"]);

/** One member as GNU tar's decode_header() leaves it. */
interface Member {
  type: string;
  name: string;
  trailingSlash: boolean;
  linkname: string;
  size: number;
  hasExtendedHeader: boolean;
  sparseNameDone: boolean;
  sparseMajor?: number;
  sparseMinor?: number;
}

/** Where the reader is between headers. */
type State =
  | { at: "header" }
  | { at: "meta"; type: "L" | "K" | "x" | "g"; size: number; parts: Buffer[]; left: number }
  | { at: "data"; left: number }
  | { at: "sparse-extension"; name: string; size: number; realsize: number; blocks: number }
  | { at: "sparse-map"; name: string; size: number; used: number; digits: string; count?: number; numbers: number; blocks: number }
  | { at: "end" };

/** A member as GNU tar reads it (names are bytes, one char per byte). */
export interface TarMember {
  type: string;
  name: string;
  linkname: string;
  /** The data's size (after a pax "size"). */
  size: number;
}

/**
 * Follows a tar stream's headers and checks each entry's path, tracking the archive's symlinks.
 * `onMember` sees each member before it is checked (tests compare them with what GNU tar reads).
 *
 * ```ts
 * const guard = new TarGuard();
 * const archiveBytes = guard.push(chunk); // throws TarEscapeError / TarFormatError
 * tar.stdin.write(chunk.subarray(0, archiveBytes));
 * if (guard.ended) tar.stdin.end();
 * ```
 */
export class TarGuard {
  /** Symlinks the archive made, by their path with every parent resolved: their target as written. */
  #symlinks = new Map<string, string>();
  #block = Buffer.alloc(BLOCK);
  #blockFill = 0;
  #state: State = { at: "header" };
  #longName: string | undefined;
  #longLink: string | undefined;
  #extended: [string, string][] | undefined; // the last 'x' header's records: a second one replaces the first
  #global: [string, string][] = []; // the last 'g' header's records: each replaces the one before
  #current = "";
  #failure: Error | undefined;
  #report: ((member: TarMember) => void) | undefined;
  entries = 0;

  constructor(options: { onMember?: (member: TarMember) => void } = {}) {
    this.#report = options.onMember;
  }

  /** Whether the end of the archive (its first zero block: GNU tar reads no further) has been seen. */
  get ended(): boolean {
    return this.#state.at === "end";
  }

  /** Why the archive is incomplete, for a "tar stream is truncated" error; undefined once it has ended. */
  truncation(): string | undefined {
    const state = this.#state;
    const after = `after ${this.entries} entries`;
    switch (state.at) {
      case "end": return undefined;
      case "header": return this.#blockFill || this.#longName !== undefined || this.#longLink !== undefined || this.#extended
        ? `it ends inside a header ${after}` : `it ends without the end-of-archive block ${after}`;
      case "meta": return `it ends inside a '${state.type}' header ${after}`;
      default: return `it ends inside the data of '${show(this.#current)}' ${after}`;
    }
  }

  /**
   * Checks the headers in `chunk` and returns how many of its bytes belong to the archive: all of them until
   * the end-of-archive block, none after it. Throws TarEscapeError or TarFormatError, and again on every
   * later push: nothing after a refused entry may reach tar.
   */
  push(chunk: Buffer): number {
    if (this.#failure) throw this.#failure;
    try {
      return this.#push(chunk);
    } catch (error) {
      this.#failure = error as Error;
      throw error;
    }
  }

  #push(chunk: Buffer): number {
    let at = 0;
    while (at < chunk.length) {
      const state = this.#state;
      if (state.at === "end") break;
      if (state.at === "data" || state.at === "meta") {
        const take = Math.min(state.left, chunk.length - at);
        if (state.at === "meta") state.parts.push(Buffer.from(chunk.subarray(at, at + take))); // a copy: callers may reuse chunks
        state.left -= take;
        at += take;
        if (state.left === 0) {
          this.#state = { at: "header" };
          if (state.at === "meta") this.#onMeta(state.type, Buffer.concat(state.parts).subarray(0, state.size));
        }
        continue;
      }
      if (state.at === "sparse-map") {
        // Byte by byte: the map is a few numbers, and may cross block and chunk boundaries.
        while (at < chunk.length && this.#state === state) this.#onSparseMapByte(state, chunk[at++]!);
        continue;
      }
      const take = Math.min(BLOCK - this.#blockFill, chunk.length - at);
      chunk.copy(this.#block, this.#blockFill, at, at + take);
      this.#blockFill += take;
      at += take;
      if (this.#blockFill === BLOCK) {
        this.#blockFill = 0;
        if (state.at === "sparse-extension") this.#onSparseExtension(state, this.#block);
        else this.#onHeader(this.#block);
      }
    }
    return at;
  }

  #onHeader(header: Buffer): void {
    // GNU tar stops at the first zero block (it only warns when a second one does not follow).
    if (header.every((byte) => byte === 0)) {
      this.#state = { at: "end" };
      return;
    }
    const recorded = headerNumber(header.subarray(148, 156), true);
    let unsigned = 0;
    let signed = 0; // some old tars summed signed chars
    for (let i = 0; i < BLOCK; i++) {
      const byte = i >= 148 && i < 156 ? 0x20 : header[i]!;
      unsigned += byte;
      signed += byte > 127 ? byte - 256 : byte;
    }
    // GNU tar would skip ahead block by block looking for a good header: a place the guard cannot follow.
    if (recorded !== unsigned && recorded !== signed) throw new TarFormatError(`tar stream is corrupt: header checksum mismatch after ${this.entries} entries`);
    const type = String.fromCharCode(header[156]!);
    // GNU tar ignores a hard link's size field ("links 0 size on tape"), and refuses a header whose size it cannot read.
    const size = type === "1" ? 0 : headerNumber(header.subarray(124, 136), false);
    if (size === undefined) throw new TarFormatError(`tar stream is corrupt: a header with an invalid size after ${this.entries} entries`);

    if (type === "L" || type === "K" || type === "x" || type === "X" || type === "g") {
      if (size > MAX_META) throw new TarFormatError(`tar stream is corrupt: a '${type}' header has ${size} bytes`);
      const meta = type === "X" ? "x" : type; // Solaris' extended header: GNU tar reads it as 'x'
      if (size === 0) this.#onMeta(meta, Buffer.alloc(0));
      else this.#state = { at: "meta", type: meta, size, parts: [], left: padded(size) };
      return;
    }
    this.#check(header, this.#member(header, type, size));
  }

  #onMeta(type: "L" | "K" | "x" | "g", data: Buffer): void {
    if (type === "L") this.#longName = cString(data);
    else if (type === "K") this.#longLink = cString(data);
    else if (type === "x") this.#extended = paxRecords(data);
    else {
      const records = paxRecords(data);
      const sparse = records.find(([key]) => key.startsWith("GNU.sparse."));
      if (sparse) throw new TarFormatError(`tar stream is not supported: a global pax header sets '${sparse[0]}'`);
      this.#global = records;
    }
  }

  /** The member's name, link target and size after GNU long names and pax records, as decode_header() sets them. */
  #member(header: Buffer, type: string, size: number): Member {
    let name = this.#longName;
    if (name === undefined) {
      const ustar = header.toString("latin1", 257, 263) === "ustar\0";
      const prefix = ustar ? cString(header.subarray(345, 500)) : "";
      name = prefix ? `${prefix}/${cString(header.subarray(0, 100))}` : cString(header.subarray(0, 100));
    }
    const member: Member = {
      type, ...stripTrailingSlashes(name), linkname: this.#longLink ?? cString(header.subarray(157, 257)), size,
      hasExtendedHeader: this.#extended !== undefined, sparseNameDone: false,
    };
    // Global records first, then this member's own: the last one of a keyword wins.
    for (const [key, value] of [...this.#global, ...(this.#extended ?? [])]) applyPaxRecord(member, key, value);
    this.#longName = this.#longLink = this.#extended = undefined;
    this.entries++;
    this.#current = member.name;
    this.#report?.({ type, name: member.name, linkname: member.linkname, size: member.size });
    return member;
  }

  #check(header: Buffer, member: Member): void {
    const { type, name, size } = member;
    const format = headerFormat(header, member.hasExtendedHeader);
    const noData = (what: string) => {
      // GNU tar does not skip these members' data (extract.c: their extractors never call skip_member()): it
      // reads it as headers, which any reader that skips it would not see. Only skipped members (a ".."
      // name) have their data skipped. No tool writes such members: refused rather than relied upon.
      if (size !== 0) throw new TarFormatError(`tar stream is not supported: the ${what} '${show(name)}' has ${size} bytes of data`);
    };
    if (member.sparseMajor !== undefined || member.sparseMinor !== undefined) {
      // GNU tar's pax sparse format, as it writes it: 1.0, a regular file, in a POSIX header (sparse.c, pax_optab).
      if (format !== "posix" || type !== "0" || member.sparseMajor !== 1 || member.sparseMinor !== 0) {
        throw new TarFormatError(`tar stream is not supported: '${show(name)}' is a pax sparse file other than GNU tar's (format 1.0, regular file, POSIX header)`);
      }
      if (size === 0) throw new TarFormatError(`tar stream is corrupt: the sparse file '${show(name)}' has no sparse map`);
      this.#writeFile(name);
      this.#state = { at: "sparse-map", name, size, used: 0, digits: "", numbers: 0, blocks: 0 };
      return;
    }
    switch (type) {
      case "1":
        noData("hard link");
        return this.#hardLink(name, member.linkname);
      case "2":
        noData("symlink");
        return this.#symlink(name, member.linkname);
      case "3": case "4": case "6":
        noData("device or FIFO");
        return this.#writeFile(name);
      case "5":
        noData("folder");
        return this.#writeFolder(name);
      case "V":
        // A volume label: GNU tar skips it, data and all.
        return this.#skip(padded(size));
      case "S":
        if (format !== "gnu") throw new TarFormatError(`tar stream is not supported: the sparse file '${show(name)}' is not in GNU format`);
        return this.#oldGnuSparse(header, name, size);
      case "M": case "N": case "D":
        throw new TarFormatError(`tar stream is not supported: '${show(name)}' has type '${type}' (multi-volume, names or incremental archives)`);
      default:
        // "0", "\0", "7" (contiguous), and types GNU tar does not know: it extracts those as regular files.
        // A regular file whose name ends in "/" is a folder (the BSD convention), without data.
        if ((type === "0" || type === "\0" || type === "7") && member.trailingSlash) {
          noData("folder");
          return this.#writeFolder(name);
        }
        this.#writeFile(name);
        this.#skip(padded(size));
    }
  }

  /**
   * Old GNU sparse members ('S'): up to 4 map entries in the header, 21 in each extension block after it,
   * read while every slot is used and the extension flag is set (oldgnu_get_sparse_info). Each map entry's
   * data is read in whole blocks whatever the size field says, so the map must account for exactly the
   * member's data, or GNU tar would read a different number of blocks than the guard skips.
   */
  #oldGnuSparse(header: Buffer, name: string, size: number): void {
    const realsize = headerNumber(header.subarray(483, 495), false);
    if (realsize === undefined) throw new TarFormatError(`tar stream is corrupt: the sparse file '${show(name)}' has an invalid real size`);
    this.#writeFile(name);
    const state = { at: "sparse-extension" as const, name, size, realsize, blocks: 0 };
    const full = this.#sparseEntries(state, header, 386, 4);
    if (full && header[482] !== 0) this.#state = state;
    else this.#sparseMapDone(name, size, 0, state.blocks);
  }

  #onSparseExtension(state: Extract<State, { at: "sparse-extension" }>, block: Buffer): void {
    const full = this.#sparseEntries(state, block, 0, 21);
    if (!(full && block[504] !== 0)) this.#sparseMapDone(state.name, state.size, 0, state.blocks);
  }

  /** Reads old GNU sparse map entries; returns whether all `count` slots were used. */
  #sparseEntries(state: { name: string; realsize: number; blocks: number }, block: Buffer, offset: number, count: number): boolean {
    for (let i = 0; i < count; i++) {
      const at = offset + i * 24;
      if (block[at + 12] === 0) return false; // an empty numbytes field ends the map
      const start = headerNumber(block.subarray(at, at + 12), false);
      const length = headerNumber(block.subarray(at + 12, at + 24), false);
      if (start === undefined || length === undefined || start + length > state.realsize) {
        throw new TarFormatError(`tar stream is corrupt: the sparse file '${show(state.name)}' has an invalid sparse map`);
      }
      state.blocks += Math.ceil(length / BLOCK);
    }
    return true;
  }

  /** Pax sparse 1.0: the map is decimal numbers, one a line, at the start of the data (pax_decode_header). */
  #onSparseMapByte(state: Extract<State, { at: "sparse-map" }>, byte: number): void {
    state.used++;
    if (state.used > padded(state.size)) throw new TarFormatError(`tar stream is corrupt: the sparse map of '${show(state.name)}' is larger than its data`);
    if (byte !== 0x0a) {
      // GNU tar keeps at most 19 digits and a newline; the guard accepts digits only.
      if (byte < 0x30 || byte > 0x39 || state.digits.length >= 19) throw new TarFormatError(`tar stream is corrupt: the sparse map of '${show(state.name)}' is malformed`);
      state.digits += String.fromCharCode(byte);
      return;
    }
    const number = paxNumber(state.digits);
    if (number === undefined) throw new TarFormatError(`tar stream is corrupt: the sparse map of '${show(state.name)}' is malformed`);
    state.digits = "";
    // The count of entries, then each entry's offset and size: only the sizes' blocks matter here.
    if (state.count === undefined) state.count = number;
    else if (++state.numbers % 2 === 0) state.blocks += Math.ceil(number / BLOCK);
    if (state.numbers < 2 * state.count) return;
    this.#sparseMapDone(state.name, state.size, Math.ceil(state.used / BLOCK), state.blocks, state.used);
  }

  /** The map read: its blocks and its data blocks must be the member's data exactly; the rest is skipped. */
  #sparseMapDone(name: string, size: number, mapBlocks: number, dataBlocks: number, used = 0): void {
    if ((mapBlocks + dataBlocks) * BLOCK !== padded(size)) {
      throw new TarFormatError(`tar stream is not supported: the sparse map of '${show(name)}' does not match its size`);
    }
    this.#skip(padded(size) - used);
  }

  /** Passes `bytes` of data before the next header. */
  #skip(bytes: number): void {
    this.#state = bytes > 0 ? { at: "data", left: bytes } : { at: "header" };
  }

  // ---- the file system as the archive builds it: only symlinks are remembered ----

  /** Where a member lands: its parent resolved through the archive's symlinks, and its own name. */
  #place(name: string, what = "entry"): { parent: string[]; leaf: string } | undefined {
    if (name.startsWith("/")) throw new TarEscapeError(`tar ${what} '${show(name)}' is an absolute path: refusing to unpack it`);
    const all = name.split("/").filter((part) => part !== "");
    if (all.includes("..")) throw new TarEscapeError(`tar ${what} '${show(name)}' contains '..': refusing to unpack it`);
    const parts = all.filter((part) => part !== ".");
    if (parts.length === 0) return undefined; // the target folder itself
    // "a/." is a's target when a is a symlink: the kernel follows it, so the guard would have to as well.
    if (all.at(-1) === ".") throw new TarEscapeError(`tar ${what} '${show(name)}' ends in '.': refusing to unpack it`);
    return { parent: this.#resolve(parts.slice(0, -1), name, what), leaf: parts.at(-1)! };
  }

  /** Follows the archive's symlinks through `parts` (folders); throws if that leaves the target folder. */
  #resolve(parts: string[], name: string, what: string): string[] {
    const resolved: string[] = [];
    const queue = [...parts];
    let hops = 0;
    while (queue.length) {
      const part = queue.shift()!;
      if (part === "" || part === ".") continue;
      if (part === "..") {
        // Only reachable through a symlink's target: a name with ".." is refused before.
        if (resolved.length === 0) throw new TarEscapeError(`tar ${what} '${show(name)}' would be written through symlinks that point outside the target folder`);
        resolved.pop();
        continue;
      }
      const here = [...resolved, part].join("/");
      const target = this.#symlinks.get(here);
      if (target === undefined) {
        resolved.push(part);
        continue;
      }
      if (++hops > MAX_HOPS) throw new TarEscapeError(`tar ${what} '${show(name)}' goes through too many symlinks`);
      if (target.startsWith("/") || !staysInside(resolved.length, target)) {
        throw new TarEscapeError(`tar ${what} '${show(name)}' would be written through the symlink '${show(here)}' -> '${show(target)}', which points outside the target folder`);
      }
      // The target replaces the link, relative to the link's folder; it may go through other symlinks.
      queue.unshift(...target.split("/"));
    }
    return resolved;
  }

  #key(place: { parent: string[]; leaf: string }): string {
    return [...place.parent, place.leaf].join("/");
  }

  /** A file, device or FIFO: GNU tar unlinks whatever non-folder is in its way (maybe_recoverable). */
  #writeFile(name: string): void {
    const place = this.#place(name);
    if (!place) throw new TarEscapeError(`tar entry '${show(name)}' names the target folder itself: refusing to unpack it`);
    this.#symlinks.delete(this.#key(place));
  }

  /** A folder: GNU tar replaces a symlink in its way too (it does not follow it: deref_stat is lstat). */
  #writeFolder(name: string): void {
    const place = this.#place(name);
    if (place) this.#symlinks.delete(this.#key(place));
  }

  #symlink(name: string, target: string): void {
    const place = this.#place(name);
    if (!place) throw new TarEscapeError(`tar entry '${show(name)}' names the target folder itself: refusing to unpack it`);
    // Where symlinkat() fails, GNU tar goes on without the link, and the guard would believe in one.
    if (target === "" || target.length > MAX_SYMLINK_TARGET) throw new TarFormatError(`tar stream is corrupt: the symlink '${show(name)}' has an empty or too long target`);
    this.#symlinks.set(this.#key(place), target);
  }

  /**
   * A hard link: linkat() does not follow a final symlink, so a hard link to one of the archive's symlinks
   * is that symlink at a new place, where its target is read from the new place's folder.
   */
  #hardLink(name: string, target: string): void {
    const place = this.#place(name);
    const source = this.#place(target, "hard link target");
    if (!place || !source) throw new TarEscapeError(`tar hard link '${show(name)}' -> '${show(target)}' names the target folder itself: refusing to unpack it`);
    const symlinkTarget = this.#symlinks.get(this.#key(source));
    // Linking to something else makes a file; but if linkat() fails (no such source), GNU tar leaves what was
    // there, so a symlink there stays on the guard's books.
    if (symlinkTarget === undefined) return;
    if (!symlinkTarget.startsWith("/") && !staysInside(place.parent.length, symlinkTarget)) {
      throw new TarEscapeError(`tar hard link '${show(name)}' to the symlink '${show(target)}' -> '${show(symlinkTarget)}' would be a symlink pointing outside the target folder`);
    }
    this.#symlinks.set(this.#key(place), symlinkTarget);
  }
}

/** The member's pax record, applied as xheader_decode() does. */
function applyPaxRecord(member: Member, key: string, value: string): void {
  if (key === "path") {
    if (!member.sparseNameDone) Object.assign(member, stripTrailingSlashes(value));
  } else if (key === "GNU.sparse.name") {
    member.sparseNameDone = true; // a later "path" no longer counts
    Object.assign(member, stripTrailingSlashes(value));
  } else if (key === "linkpath") {
    member.linkname = value;
  } else if (key === "size" || key === "GNU.sparse.major" || key === "GNU.sparse.minor") {
    const number = paxNumber(value);
    // GNU tar reports a bad number and keeps the header's: a guess the guard will not make.
    if (number === undefined) throw new TarFormatError(`tar stream is corrupt: a pax record ${key}=${show(value)}`);
    if (key === "size") member.size = number;
    else if (key === "GNU.sparse.major") member.sparseMajor = number;
    else member.sparseMinor = number;
  } else if (PAX_SPARSE_0.has(key)) {
    throw new TarFormatError(`tar stream is not supported: '${show(member.name)}' is a sparse file of a kind GNU tar writes no more (${key}, tar 1.14 to 1.15)`);
  }
}

/** gnulib's strip_trailing_slashes(): "a/" names a, and GNU tar remembers the slash. */
function stripTrailingSlashes(name: string): { name: string; trailingSlash: boolean } {
  const stripped = name.replace(/\/+$/, "");
  if (stripped === "" && name !== "") return { name: "/", trailingSlash: false };
  return { name: stripped, trailingSlash: stripped !== name };
}

/** decode_header()'s format: it decides which sparse formats apply. */
function headerFormat(header: Buffer, hasExtendedHeader: boolean): "posix" | "ustar" | "star" | "gnu" | "v7" {
  if (header.toString("latin1", 257, 263) === "ustar\0") {
    const octal = (byte: number) => byte >= 0x30 && byte <= 0x37;
    if (header[475] === 0 && octal(header[476]!) && header[487] === 0x20 && octal(header[488]!) && header[499] === 0x20) return "star";
    return hasExtendedHeader ? "posix" : "ustar";
  }
  return header.toString("latin1", 257, 265) === "ustar  \0" ? "gnu" : "v7";
}

/** Lexically, whether a relative target read from a folder `depth` deep stays inside. */
function staysInside(depth: number, target: string): boolean {
  for (const step of target.split("/")) {
    if (step === "..") depth--;
    else if (step !== "" && step !== ".") depth++;
    if (depth < 0) return false;
  }
  return true;
}
