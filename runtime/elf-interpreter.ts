// Reads the program interpreter (PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2) of an ELF executable from
// its program headers, so the tool kit knows which dynamic loader to copy and to run a tool with. Only the
// ELF header, the program header table and the interpreter's path are read, never the whole file.
import { open, type FileHandle } from "node:fs/promises";

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]); // "\x7fELF"
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ELFDATA2MSB = 2;
const PT_INTERP = 3;
/** e_phnum's escape value: the real count lives in section header 0, which no executable we copy needs. */
const PN_XNUM = 0xffff;
/** Bounds on what a sane executable holds, so a corrupt header cannot make us read megabytes. */
const MAX_PROGRAM_HEADERS = 1024;
const MAX_INTERPRETER_LENGTH = 4096;

/** Where the fields sit in the two ELF classes (offsets in the ELF header and in one program header). */
const LAYOUT = {
  [ELFCLASS32]: { headerSize: 52, phoff: 0x1c, phentsize: 0x2a, phnum: 0x2c, entrySize: 32, pOffset: 4, pFilesz: 16, wordSize: 4 },
  [ELFCLASS64]: { headerSize: 64, phoff: 0x20, phentsize: 0x36, phnum: 0x38, entrySize: 56, pOffset: 8, pFilesz: 32, wordSize: 8 },
} as const;

async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const bytes = Buffer.alloc(length);
  const { bytesRead } = await file.read(bytes, 0, length, position);
  return bytes.subarray(0, bytesRead);
}

/**
 * The program interpreter an ELF executable names (its PT_INTERP segment), or undefined when it has none:
 * a static (or static-pie) executable, or the dynamic loader itself. Throws for a file that is not ELF.
 *
 * ```ts
 * await readElfInterpreter("/usr/bin/ls");     // "/lib64/ld-linux-x86-64.so.2"
 * await readElfInterpreter("/sbin/ldconfig");  // undefined (static-pie on Debian)
 * ```
 */
export async function readElfInterpreter(path: string): Promise<string | undefined> {
  const file = await open(path, "r");
  try {
    const ident = await readAt(file, 0, 16);
    if (ident.length < 16 || !ident.subarray(0, 4).equals(ELF_MAGIC)) throw new Error(`${path} is not an ELF executable`);
    const elfClass = ident[4];
    const data = ident[5];
    if (elfClass !== ELFCLASS32 && elfClass !== ELFCLASS64) throw new Error(`${path} has an unknown ELF class (${elfClass})`);
    if (data !== ELFDATA2LSB && data !== ELFDATA2MSB) throw new Error(`${path} has an unknown ELF byte order (${data})`);
    const layout = LAYOUT[elfClass];
    const little = data === ELFDATA2LSB;
    const header = await readAt(file, 0, layout.headerSize);
    if (header.length < layout.headerSize) throw new Error(`${path} is truncated: its ELF header is incomplete`);
    const u16 = (b: Buffer, at: number) => (little ? b.readUInt16LE(at) : b.readUInt16BE(at));
    // Offsets and sizes are 32 or 64 bits wide; anything past 2^53 is corrupt for our purposes anyway.
    const word = (b: Buffer, at: number): number => {
      if (layout.wordSize === 4) return little ? b.readUInt32LE(at) : b.readUInt32BE(at);
      const value = little ? b.readBigUInt64LE(at) : b.readBigUInt64BE(at);
      if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${path} has an ELF offset beyond 2^53: corrupt file?`);
      return Number(value);
    };
    const phoff = word(header, layout.phoff);
    const phentsize = u16(header, layout.phentsize);
    const phnum = u16(header, layout.phnum);
    if (phnum === 0) return undefined;
    if (phnum === PN_XNUM || phnum > MAX_PROGRAM_HEADERS) throw new Error(`${path} has ${phnum === PN_XNUM ? "an extended count of" : phnum} program headers, more than an executable needs`);
    if (phentsize < layout.entrySize) throw new Error(`${path} has program headers of ${phentsize} bytes, less than ELF's ${layout.entrySize}`);
    const table = await readAt(file, phoff, phnum * phentsize);
    if (table.length < phnum * phentsize) throw new Error(`${path} is truncated: its program headers end beyond the file`);
    for (let i = 0; i < phnum; i++) {
      const entry = table.subarray(i * phentsize, (i + 1) * phentsize);
      const type = little ? entry.readUInt32LE(0) : entry.readUInt32BE(0);
      if (type !== PT_INTERP) continue;
      const offset = word(entry, layout.pOffset);
      const size = word(entry, layout.pFilesz);
      if (size === 0 || size > MAX_INTERPRETER_LENGTH) throw new Error(`${path} has a PT_INTERP segment of ${size} bytes, which is no path`);
      const bytes = await readAt(file, offset, size);
      if (bytes.length < size) throw new Error(`${path} is truncated: its interpreter path ends beyond the file`);
      // The segment holds the path and its terminating NUL.
      const end = bytes.indexOf(0);
      const interpreter = bytes.subarray(0, end < 0 ? bytes.length : end).toString("utf8");
      if (!interpreter) throw new Error(`${path} names an empty program interpreter`);
      return interpreter;
    }
    return undefined;
  } finally {
    await file.close();
  }
}
