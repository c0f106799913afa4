// The wire format of the NBD protocol, as far as a read-only server with simple replies needs it: the
// constants and the few fixed-layout messages of the fixed newstyle handshake and of the transmission
// phase, encoded and decoded by pure functions. Source: doc/proto.md of NetworkBlockDevice/nbd (the
// protocol's reference); every number is big-endian ("network byte order") on the wire.
// Structured replies, extended headers, metadata contexts and TLS are left out on purpose: the kernel's
// NBD driver speaks none of them, and a server may refuse each with NBD_REP_ERR_UNSUP.

/** "NBDMAGIC", the first 8 bytes a server sends. */
export const NBD_MAGIC = 0x4e42444d41474943n;
/** "IHAVEOPT": follows NBD_MAGIC in the greeting, and starts every option the client sends. */
export const IHAVEOPT = 0x49484156454f5054n;
/** Starts every reply to an option (except NBD_OPT_EXPORT_NAME's). */
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;

/** Handshake flags (16 bits, server → client). */
export const HandshakeFlag = { FIXED_NEWSTYLE: 1 << 0, NO_ZEROES: 1 << 1 } as const;
/** Client flags (32 bits, client → server); a server must drop a client that sets any other bit. */
export const ClientFlag = { FIXED_NEWSTYLE: 1 << 0, NO_ZEROES: 1 << 1 } as const;

/** Transmission flags (16 bits), sent with the export's size. */
export const TransmissionFlag = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
} as const;

export const NbdOption = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
} as const;

/** Option reply types; the errors have bit 31 set. */
export const OptionReply = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  ERR_UNSUP: 2 ** 31 + 1,
  ERR_POLICY: 2 ** 31 + 2,
  ERR_INVALID: 2 ** 31 + 3,
  ERR_UNKNOWN: 2 ** 31 + 6,
  ERR_TOO_BIG: 2 ** 31 + 9,
} as const;

/** Information types of NBD_OPT_INFO / NBD_OPT_GO. */
export const NbdInfo = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;

export const NbdCommand = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;

/** The error values of a reply (the protocol's own numbers, which happen to be Linux's errno values). */
export const NbdError = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

export const GREETING_SIZE = 18;
export const OPTION_HEADER_SIZE = 16;
export const REQUEST_SIZE = 28;
export const SIMPLE_REPLY_SIZE = 16;
/** The reserved zeroes after NBD_OPT_EXPORT_NAME's reply, unless the client set NO_ZEROES. */
export const EXPORT_NAME_PADDING = 124;

/**
 * The server's greeting: NBDMAGIC, IHAVEOPT, handshake flags.
 *
 * ```ts
 * socket.write(encodeGreeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES));
 * ```
 */
export function encodeGreeting(handshakeFlags: number): Buffer {
  const message = Buffer.alloc(GREETING_SIZE);
  message.writeBigUInt64BE(NBD_MAGIC, 0);
  message.writeBigUInt64BE(IHAVEOPT, 8);
  message.writeUInt16BE(handshakeFlags, 16);
  return message;
}

export interface OptionHeader {
  magic: bigint;
  option: number;
  /** Length of the option data that follows. */
  length: number;
}

/**
 * Decodes the 16-byte header of an option: IHAVEOPT, option, data length.
 *
 * ```ts
 * const { magic, option, length } = decodeOptionHeader(bytes); // magic === IHAVEOPT when well-formed
 * ```
 */
export function decodeOptionHeader(header: Buffer): OptionHeader {
  return { magic: header.readBigUInt64BE(0), option: header.readUInt32BE(8), length: header.readUInt32BE(12) };
}

/**
 * One reply to an option: magic, the option replied to, reply type, data length, data.
 *
 * ```ts
 * socket.write(encodeOptionReply(NbdOption.LIST, OptionReply.ACK));
 * ```
 */
export function encodeOptionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const message = Buffer.alloc(20 + data.length);
  message.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  message.writeUInt32BE(option, 8);
  message.writeUInt32BE(type, 12);
  message.writeUInt32BE(data.length, 16);
  data.copy(message, 20);
  return message;
}

/**
 * An error reply carrying a message for a human (the protocol allows a string with every error).
 *
 * ```ts
 * encodeOptionError(NbdOption.GO, OptionReply.ERR_UNKNOWN, "no export named 'x'");
 * ```
 */
export function encodeOptionError(option: number, type: number, message: string): Buffer {
  return encodeOptionReply(option, type, Buffer.from(message, "utf8"));
}

/**
 * NBD_REP_SERVER's data: the export name, length-prefixed.
 *
 * ```ts
 * encodeOptionReply(NbdOption.LIST, OptionReply.SERVER, encodeServerEntry("root"));
 * ```
 */
export function encodeServerEntry(name: string): Buffer {
  const encoded = Buffer.from(name, "utf8");
  const data = Buffer.alloc(4 + encoded.length);
  data.writeUInt32BE(encoded.length, 0);
  encoded.copy(data, 4);
  return data;
}

/**
 * The answer to NBD_OPT_EXPORT_NAME, which has no reply header: size, transmission flags, and 124
 * zeroes unless the client negotiated NO_ZEROES.
 *
 * ```ts
 * socket.write(encodeExportNameReply(size, flags, !noZeroes));
 * ```
 */
export function encodeExportNameReply(size: number, transmissionFlags: number, withZeroes: boolean): Buffer {
  const message = Buffer.alloc(10 + (withZeroes ? EXPORT_NAME_PADDING : 0));
  message.writeBigUInt64BE(BigInt(size), 0);
  message.writeUInt16BE(transmissionFlags, 8);
  return message;
}

/**
 * NBD_REP_INFO data of type NBD_INFO_EXPORT: size and transmission flags.
 *
 * ```ts
 * encodeOptionReply(NbdOption.GO, OptionReply.INFO, encodeInfoExport(size, flags));
 * ```
 */
export function encodeInfoExport(size: number, transmissionFlags: number): Buffer {
  const data = Buffer.alloc(12);
  data.writeUInt16BE(NbdInfo.EXPORT, 0);
  data.writeBigUInt64BE(BigInt(size), 2);
  data.writeUInt16BE(transmissionFlags, 10);
  return data;
}

/**
 * NBD_REP_INFO data of type NBD_INFO_BLOCK_SIZE: minimum, preferred and maximum payload size.
 *
 * ```ts
 * encodeInfoBlockSize(512, 4096, 32 << 20);
 * ```
 */
export function encodeInfoBlockSize(minimum: number, preferred: number, maximum: number): Buffer {
  const data = Buffer.alloc(14);
  data.writeUInt16BE(NbdInfo.BLOCK_SIZE, 0);
  data.writeUInt32BE(minimum, 2);
  data.writeUInt32BE(preferred, 6);
  data.writeUInt32BE(maximum, 10);
  return data;
}

/**
 * NBD_REP_INFO data of type NBD_INFO_NAME: the export's canonical name.
 *
 * ```ts
 * encodeInfoName("root");
 * ```
 */
export function encodeInfoName(name: string): Buffer {
  const encoded = Buffer.from(name, "utf8");
  const data = Buffer.alloc(2 + encoded.length);
  data.writeUInt16BE(NbdInfo.NAME, 0);
  encoded.copy(data, 2);
  return data;
}

export interface InfoRequest {
  name: string;
  /** The NBD_INFO_* types the client asks for. */
  requests: number[];
}

/**
 * Decodes the data of NBD_OPT_INFO / NBD_OPT_GO (name length, name, count, count × 16-bit info types);
 * undefined when the lengths do not add up to the option's length.
 *
 * ```ts
 * decodeInfoRequest(data) // { name: "root", requests: [NbdInfo.BLOCK_SIZE] }
 * ```
 */
export function decodeInfoRequest(data: Buffer): InfoRequest | undefined {
  if (data.length < 6) return undefined;
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 6) return undefined;
  const count = data.readUInt16BE(4 + nameLength);
  if (data.length !== 6 + nameLength + 2 * count) return undefined;
  const requests: number[] = [];
  for (let at = 6 + nameLength; at < data.length; at += 2) requests.push(data.readUInt16BE(at));
  return { name: data.toString("utf8", 4, 4 + nameLength), requests };
}

export interface Request {
  magic: number;
  flags: number;
  type: number;
  /** The client's 8-byte cookie ("handle"), copied: it is echoed verbatim in the reply. */
  handle: Buffer;
  offset: bigint;
  length: number;
}

/**
 * Decodes a 28-byte transmission request: magic, command flags, type, handle, offset, length.
 *
 * ```ts
 * const request = decodeRequest(bytes); // request.magic === REQUEST_MAGIC when well-formed
 * ```
 */
export function decodeRequest(header: Buffer): Request {
  return {
    magic: header.readUInt32BE(0),
    flags: header.readUInt16BE(4),
    type: header.readUInt16BE(6),
    handle: Buffer.from(header.subarray(8, 16)),
    offset: header.readBigUInt64BE(16),
    length: header.readUInt32BE(24),
  };
}

/**
 * The 16-byte simple reply: magic, error (0 for success), the request's handle. A successful read's
 * data follows it directly.
 *
 * ```ts
 * socket.write(encodeSimpleReply(NbdError.EPERM, request.handle));
 * ```
 */
export function encodeSimpleReply(error: number, handle: Buffer): Buffer {
  const message = Buffer.alloc(SIMPLE_REPLY_SIZE);
  message.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  message.writeUInt32BE(error, 4);
  handle.copy(message, 8, 0, 8);
  return message;
}
