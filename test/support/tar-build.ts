// Builds tar archives byte by byte, hostile ones included: wrong sizes, pax records, GNU long names,
// old GNU sparse headers. Tests use it to hand GNU tar and TarGuard the same exact bytes.

export const BLOCK = 512;

export interface HeaderFields {
  /** The name field (100 bytes); longer names need `prefix`, a long name ('L') or a pax path. */
  name?: string | Buffer;
  /** Type flag: "0" by default; "\0" for the old regular file type. */
  type?: string;
  linkname?: string | Buffer;
  /** The size field: a number is written in octal (or base-256 when too large), a Buffer as is. */
  size?: number | Buffer;
  /** "ustar" (POSIX, "ustar\0" "00"), "gnu" ("ustar  \0"), or "v7" (no magic). Default "ustar". */
  format?: "ustar" | "gnu" | "v7";
  /** The ustar prefix field (155 bytes, used only with format "ustar"). */
  prefix?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  /** Changes the header before its checksum is computed (e.g. old GNU sparse fields). */
  edit?: (header: Buffer) => void;
  /** Leave the checksum wrong on purpose. */
  badChecksum?: boolean;
}

/** A size-like number field: octal with a NUL, or GNU base-256 when it does not fit. */
export function numberField(value: number, width: number): Buffer {
  const field = Buffer.alloc(width);
  const octal = value.toString(8);
  if (octal.length <= width - 1) {
    field.write(octal.padStart(width - 1, "0"), 0, "latin1");
    return field;
  }
  let rest = BigInt(value);
  for (let i = width - 1; i > 0; i--) {
    field[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  field[0] = 0x80;
  return field;
}

/** One 512-byte header block. */
export function header(fields: HeaderFields = {}): Buffer {
  const block = Buffer.alloc(BLOCK);
  const put = (value: string | Buffer, at: number, width: number) => {
    const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : value;
    bytes.copy(block, at, 0, Math.min(bytes.length, width));
  };
  put(fields.name ?? "", 0, 100);
  put(numberField(fields.mode ?? 0o644, 8), 100, 8);
  put(numberField(fields.uid ?? 0, 8), 108, 8);
  put(numberField(fields.gid ?? 0, 8), 116, 8);
  put(typeof fields.size === "number" || fields.size === undefined ? numberField(fields.size ?? 0, 12) : fields.size, 124, 12);
  put(numberField(0, 12), 136, 12);
  block.write(fields.type ?? "0", 156, 1, "latin1");
  if (fields.type === "\0") block[156] = 0;
  put(fields.linkname ?? "", 157, 100);
  const format = fields.format ?? "ustar";
  if (format === "ustar") {
    block.write("ustar\0" + "00", 257, "latin1");
    put(fields.prefix ?? "", 345, 155);
  } else if (format === "gnu") {
    block.write("ustar  \0", 257, "latin1");
  }
  fields.edit?.(block);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  if (fields.badChecksum) sum += 1;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return block;
}

/** `data` followed by zeros up to the next block boundary. */
export function padded(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK)]);
}

/** A header and its data; the size field says the data's length unless `size` says otherwise. */
export function entry(name: string | Buffer, fields: Omit<HeaderFields, "name"> & { data?: string | Buffer } = {}): Buffer {
  const data = typeof fields.data === "string" ? Buffer.from(fields.data) : (fields.data ?? Buffer.alloc(0));
  return Buffer.concat([header({ ...fields, name, size: fields.size ?? data.length }), padded(data)]);
}

/** The archive's end: two zero blocks. */
export const END = Buffer.alloc(2 * BLOCK);
export const archive = (...parts: Buffer[]): Buffer => Buffer.concat([...parts, END]);

/** One pax record, "<length> <key>=<value>\n", with its length counting itself. */
export function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), typeof value === "string" ? Buffer.from(value) : value, Buffer.from("\n")]);
  let length = body.length + 1;
  while (`${length}`.length + body.length !== length) length++;
  return Buffer.concat([Buffer.from(`${length}`), body]);
}

/** A pax extended header: 'x' (next entry), 'g' (global) or 'X' (Solaris, read as 'x'). */
export function pax(records: [string, string | Buffer][] | Record<string, string>, type: "x" | "g" | "X" = "x"): Buffer {
  const list = Array.isArray(records) ? records : Object.entries(records);
  const data = Buffer.concat(list.map(([key, value]) => paxRecord(key, value)));
  return entry(type === "g" ? "pax_global_header" : "PaxHeaders/entry", { type, data });
}

/** A GNU long name ('L') or long link target ('K') for the next entry. */
export const longName = (name: string | Buffer): Buffer =>
  entry("././@LongLink", { type: "L", format: "gnu", data: Buffer.concat([Buffer.from(name), Buffer.alloc(1)]) });
export const longLink = (target: string | Buffer): Buffer =>
  entry("././@LongLink", { type: "K", format: "gnu", data: Buffer.concat([Buffer.from(target), Buffer.alloc(1)]) });

/** Sets old GNU sparse map entries (offset, numbytes) in an 'S' header, its isextended flag and realsize. */
export function oldGnuSparse(map: [number, number][], realsize: number, isextended = false): (header: Buffer) => void {
  return (block) => {
    map.slice(0, 4).forEach(([offset, numbytes], i) => {
      numberField(offset, 12).copy(block, 386 + i * 24);
      numberField(numbytes, 12).copy(block, 398 + i * 24);
    });
    block[482] = isextended ? 1 : 0;
    numberField(realsize, 12).copy(block, 483);
  };
}

/** An old GNU sparse extension block with up to 21 map entries. */
export function sparseExtension(map: [number, number][], isextended = false): Buffer {
  const block = Buffer.alloc(BLOCK);
  map.slice(0, 21).forEach(([offset, numbytes], i) => {
    numberField(offset, 12).copy(block, i * 24);
    numberField(numbytes, 12).copy(block, 12 + i * 24);
  });
  block[504] = isextended ? 1 : 0;
  return block;
}
