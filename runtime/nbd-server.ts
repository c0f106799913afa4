// A read-only NBD server for one export, whose client is the kernel's NBD driver: `nbd-client` connects
// /dev/nbdN to our Unix socket, does the fixed newstyle handshake itself (NBD_OPT_GO, or
// NBD_OPT_EXPORT_NAME when a server refuses GO), then hands the socket to the kernel, which sends many
// read requests at once. Each connection parses the byte stream incrementally (a message may arrive split
// at any byte, many may arrive in one chunk), serves reads concurrently from the export's read callback,
// and writes each reply whole (header and data back to back, corked), so replies never interleave.
// Memory stays bounded whatever the client sends: option data is capped, write payloads are skipped as
// they stream by instead of buffered, and a connection stops reading requests while too many reads (or
// too many bytes) are in flight or while the socket's send buffer is full, so the kernel's queue waits
// in the kernel, not in our heap.
import { createServer, type Server, type Socket } from "node:net";
import { ByteQueue } from "./byte-queue.ts";
import {
  ClientFlag,
  decodeInfoRequest,
  decodeOptionHeader,
  decodeRequest,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoName,
  encodeOptionError,
  encodeOptionReply,
  encodeServerEntry,
  encodeSimpleReply,
  HandshakeFlag,
  IHAVEOPT,
  NbdCommand,
  NbdError,
  NbdInfo,
  NbdOption,
  OPTION_HEADER_SIZE,
  OptionReply,
  REQUEST_MAGIC,
  REQUEST_SIZE,
  TransmissionFlag,
  type Request,
} from "./nbd-protocol.ts";

/** What the server exports: a named, fixed-size, read-only range of bytes. */
export interface NbdExport {
  /** The export name clients ask for; the empty name (the protocol's "default export") means it too. */
  name: string;
  /** Size in bytes. */
  size: number;
  /** Exactly `length` bytes at `offset`; asked for 1 to MAX_READ_LENGTH bytes, never past `size`. May reject. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** Where the server reports what the caller logs. Hooks must not throw. */
export interface NbdServerHooks {
  /** A read callback failed (or returned the wrong length); the client got NBD_EIO for that request. */
  onReadError?(error: Error, offset: number, length: number): void;
  /** A client broke the protocol (bad magic, unknown flags, oversized option, unknown export); it was disconnected. */
  onProtocolError?(message: string): void;
  /** A connection opened or closed; `count` connections are open now. */
  onConnectionCount?(count: number): void;
}

export interface NbdServer extends Server {
  /** Drops every open connection now (in-flight reads go unanswered); `close()` stops accepting new ones. */
  closeConnections(): void;
}

/** The largest read served: the protocol's default maximum payload (2^25), advertised as such. */
export const MAX_READ_LENGTH = 32 * 1024 * 1024;
/** Option data beyond this is refused: export names are at most 4 KiB, nothing we accept needs more. */
export const MAX_OPTION_LENGTH = 64 * 1024;
/** A connection reads no further request while this many reads are in flight... */
export const MAX_READS_IN_FLIGHT = 64;
/** ...or while the reads in flight add up to this many bytes (so at most this plus one MAX_READ_LENGTH). */
export const MAX_BYTES_IN_FLIGHT = 64 * 1024 * 1024;
const PREFERRED_BLOCK_SIZE = 4096;

/** Reads only; any connection may serve any request (no cache), and a flush has nothing to do. */
const TRANSMISSION_FLAGS =
  TransmissionFlag.HAS_FLAGS | TransmissionFlag.READ_ONLY | TransmissionFlag.SEND_FLUSH | TransmissionFlag.CAN_MULTI_CONN;
const KNOWN_CLIENT_FLAGS = ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES;

/**
 * A net.Server speaking NBD for EXPORT; the caller listens (on a Unix socket path, or an inherited fd)
 * and, once the kernel no longer needs it, calls `close()` and `closeConnections()`.
 *
 * ```ts
 * const server = createNbdServer(
 *   { name: "root", size, read: (offset, length) => ranges.read(offset, length) },
 *   { onReadError: (error, offset, length) => log(`read of ${length} at ${offset} failed: ${error.message}`) },
 * );
 * server.listen("/run/netimport/root.nbd");
 * // nbd-client -unix /run/netimport/root.nbd /dev/nbd0 -name root
 * ```
 */
export function createNbdServer(exp: NbdExport, hooks: NbdServerHooks = {}): NbdServer {
  if (!Number.isSafeInteger(exp.size) || exp.size < 0) throw new RangeError(`export size ${exp.size} is not a byte count`);
  const connections = new Set<Socket>();
  // Half-open: a client that shuts down its sending side after its last request still gets its replies.
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    connections.add(socket);
    socket.once("close", () => {
      connections.delete(socket);
      hooks.onConnectionCount?.(connections.size);
    });
    hooks.onConnectionCount?.(connections.size);
    new NbdConnection(socket, exp, hooks).start();
  });
  return Object.assign(server, {
    closeConnections(): void {
      for (const socket of connections) socket.destroy();
    },
  });
}

/** Where a connection is in the protocol: what the next bytes of input are. */
type Phase =
  | "client-flags"
  | "option-header"
  | "option-data"
  | "request"
  | "write-payload"
  /** No more input is parsed: answer the reads in flight, then close. */
  | "closing";

class NbdConnection {
  private readonly input = new ByteQueue();
  private phase: Phase = "client-flags";
  private noZeroes = false;
  private option = { option: 0, length: 0 };
  /** The WRITE whose payload is being skipped, and how much of it is left. */
  private refusedWrite: { handle: Buffer; left: number } = { handle: Buffer.alloc(8), left: 0 };
  private readsInFlight = 0;
  private bytesInFlight = 0;
  private waitingForDrain = false;
  private inputEnded = false;

  private readonly socket: Socket;
  private readonly exp: NbdExport;
  private readonly hooks: NbdServerHooks;

  constructor(socket: Socket, exp: NbdExport, hooks: NbdServerHooks) {
    this.socket = socket;
    this.exp = exp;
    this.hooks = hooks;
  }

  start(): void {
    const socket = this.socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      if (this.phase === "closing") return;
      this.input.push(chunk);
      this.pump();
    });
    socket.on("end", () => {
      this.inputEnded = true;
      this.pump();
    });
    socket.on("drain", () => {
      this.waitingForDrain = false;
      this.pump();
    });
    // The client went away (ECONNRESET, EPIPE): the socket destroys itself and "close" follows.
    socket.on("error", () => undefined);
    this.send(encodeGreeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES));
  }

  /** Parses and answers what the input holds, as far as the in-flight limits allow; then reads on or pauses. */
  private pump(): void {
    // Gone, or dropped by closeConnections(): start no read for requests still buffered.
    if (this.socket.destroyed) {
      this.phase = "closing";
      this.input.clear();
      return;
    }
    while (this.phase !== "closing" && !this.throttled() && this.step());
    // After the client's last byte, whatever is left is an incomplete message: nothing more will come.
    if (this.inputEnded && this.phase !== "closing" && !this.throttled()) this.phase = "closing";
    if (this.phase === "closing") {
      this.input.clear();
      this.socket.resume(); // input is discarded from now on; keep reading so the client's close is seen
      if (this.readsInFlight === 0 && !this.socket.destroyed && !this.socket.writableEnded) {
        this.socket.end(() => this.socket.destroy());
      }
    } else if (this.throttled()) {
      this.socket.pause();
    } else {
      this.socket.resume();
    }
  }

  private throttled(): boolean {
    return (
      this.waitingForDrain ||
      this.readsInFlight >= MAX_READS_IN_FLIGHT ||
      this.bytesInFlight >= MAX_BYTES_IN_FLIGHT
    );
  }

  /** Consumes one message (or the rest of a write payload) if the input holds it whole; false if not. */
  private step(): boolean {
    const input = this.input;
    switch (this.phase) {
      case "client-flags": {
        if (input.length < 4) return false;
        const flags = input.take(4).readUInt32BE(0);
        if ((flags & ~KNOWN_CLIENT_FLAGS) !== 0) return this.abort(`NBD client flags 0x${hex(flags)} have unknown bits`);
        this.noZeroes = (flags & ClientFlag.NO_ZEROES) !== 0;
        this.phase = "option-header";
        return true;
      }
      case "option-header": {
        if (input.length < OPTION_HEADER_SIZE) return false;
        const { magic, option, length } = decodeOptionHeader(input.take(OPTION_HEADER_SIZE));
        if (magic !== IHAVEOPT) return this.abort(`NBD option with bad magic 0x${magic.toString(16)}`);
        if (length > MAX_OPTION_LENGTH) {
          const message = `NBD option ${option} with ${length} bytes of data, over the limit of ${MAX_OPTION_LENGTH}`;
          // NBD_OPT_EXPORT_NAME has no error reply; every other option gets one before we hang up.
          if (option !== NbdOption.EXPORT_NAME) this.send(encodeOptionError(option, OptionReply.ERR_TOO_BIG, message));
          this.hooks.onProtocolError?.(`${message}; closing the connection`);
          this.phase = "closing";
          return false;
        }
        this.option = { option, length };
        this.phase = "option-data";
        return true;
      }
      case "option-data": {
        if (input.length < this.option.length) return false;
        const data = input.take(this.option.length);
        this.phase = "option-header";
        this.answerOption(this.option.option, data);
        return true;
      }
      case "request": {
        if (input.length < REQUEST_SIZE) return false;
        const request = decodeRequest(input.take(REQUEST_SIZE));
        if (request.magic !== REQUEST_MAGIC) return this.abort(`NBD request with bad magic 0x${hex(request.magic)}`);
        this.answerRequest(request);
        return true;
      }
      case "write-payload": {
        if (this.refusedWrite.left > 0) {
          this.refusedWrite.left -= input.skip(this.refusedWrite.left);
          if (this.refusedWrite.left > 0) return false;
        }
        this.phase = "request";
        this.reply(this.refusedWrite.handle, NbdError.EPERM);
        return true;
      }
      case "closing":
        return false;
    }
  }

  private answerOption(option: number, data: Buffer): void {
    const exp = this.exp;
    switch (option) {
      case NbdOption.EXPORT_NAME: {
        const name = data.toString("utf8");
        // This option has no error reply: the protocol says to hang up.
        if (!this.isExport(name)) return void this.abort(`NBD client asked for export '${name}', not '${exp.name}'`);
        this.send(encodeExportNameReply(exp.size, TRANSMISSION_FLAGS, !this.noZeroes));
        this.phase = "request";
        return;
      }
      case NbdOption.ABORT:
        this.send(encodeOptionReply(option, OptionReply.ACK));
        this.phase = "closing";
        return;
      case NbdOption.LIST:
        if (data.length > 0) return this.send(encodeOptionError(option, OptionReply.ERR_INVALID, "NBD_OPT_LIST takes no data"));
        this.send(encodeOptionReply(option, OptionReply.SERVER, encodeServerEntry(exp.name)));
        this.send(encodeOptionReply(option, OptionReply.ACK));
        return;
      case NbdOption.INFO:
      case NbdOption.GO: {
        const request = decodeInfoRequest(data);
        if (!request) return this.send(encodeOptionError(option, OptionReply.ERR_INVALID, "malformed information request"));
        if (!this.isExport(request.name)) {
          return this.send(encodeOptionError(option, OptionReply.ERR_UNKNOWN, `no export named '${request.name}'`));
        }
        this.send(encodeOptionReply(option, OptionReply.INFO, encodeInfoExport(exp.size, TRANSMISSION_FLAGS)));
        if (request.requests.includes(NbdInfo.BLOCK_SIZE)) {
          // 512 unless the size is not a multiple of it: a client bound to 512 could not read the tail.
          const minimum = exp.size % 512 === 0 ? 512 : 1;
          const blockSize = encodeInfoBlockSize(minimum, PREFERRED_BLOCK_SIZE, MAX_READ_LENGTH);
          this.send(encodeOptionReply(option, OptionReply.INFO, blockSize));
        }
        if (request.requests.includes(NbdInfo.NAME)) {
          this.send(encodeOptionReply(option, OptionReply.INFO, encodeInfoName(exp.name)));
        }
        this.send(encodeOptionReply(option, OptionReply.ACK));
        if (option === NbdOption.GO) this.phase = "request";
        return;
      }
      default:
        // Includes NBD_OPT_STRUCTURED_REPLY (simple replies only: the kernel uses nothing else) and STARTTLS.
        return this.send(encodeOptionError(option, OptionReply.ERR_UNSUP, `option ${option} is not supported`));
    }
  }

  private answerRequest(request: Request): void {
    const { handle } = request;
    // Command flags are ignored: we advertise none (no FUA, no DF), and ignoring one is always safe here.
    switch (request.type) {
      case NbdCommand.READ:
        return this.read(request);
      case NbdCommand.WRITE:
        // Its payload follows; skip it as it streams in, then refuse it.
        this.refusedWrite = { handle, left: request.length };
        this.phase = "write-payload";
        return;
      case NbdCommand.FLUSH:
        return this.reply(handle, 0); // nothing is ever written, so nothing is ever dirty
      case NbdCommand.TRIM:
      case NbdCommand.WRITE_ZEROES:
        return this.reply(handle, NbdError.EPERM);
      case NbdCommand.DISC:
        this.phase = "closing"; // answers the reads in flight, then closes
        return;
      default:
        return this.reply(handle, NbdError.EINVAL);
    }
  }

  private read({ handle, offset, length }: Request): void {
    // With simple replies an oversized read is EINVAL (EOVERFLOW is for structured replies' DF flag).
    if (length > MAX_READ_LENGTH || offset + BigInt(length) > BigInt(this.exp.size)) return this.reply(handle, NbdError.EINVAL);
    if (length === 0) return this.reply(handle, 0);
    this.readsInFlight++;
    this.bytesInFlight += length;
    void this.serveRead(handle, Number(offset), length);
  }

  private async serveRead(handle: Buffer, offset: number, length: number): Promise<void> {
    try {
      const data: unknown = await this.exp.read(offset, length);
      // Checked before anything is written: a wrong length would desynchronise the client's stream.
      if (!(data instanceof Uint8Array) || data.length !== length) {
        const got = data instanceof Uint8Array ? `${data.length} bytes` : typeof data;
        throw new Error(`the export gave ${got} for a read of ${length} bytes at ${offset}`);
      }
      this.reply(handle, 0, data);
    } catch (error) {
      this.reply(handle, NbdError.EIO); // answered first: a throwing hook must not leave the request open
      this.hooks.onReadError?.(error instanceof Error ? error : new Error(String(error)), offset, length);
    } finally {
      this.readsInFlight--;
      this.bytesInFlight -= length;
      this.pump();
    }
  }

  /** One simple reply, with the read's data right behind its header. */
  private reply(handle: Buffer, error: number, data?: Uint8Array): void {
    const header = encodeSimpleReply(error, handle);
    if (!data) return this.send(header);
    if (!this.socket.writable) return;
    // Corked, the two writes leave as one writev; either way nothing else is written between them.
    this.socket.cork();
    this.socket.write(header);
    const flowing = this.socket.write(data);
    this.socket.uncork();
    if (!flowing) this.waitingForDrain = true;
  }

  private send(message: Buffer): void {
    if (!this.socket.writable) return;
    if (!this.socket.write(message)) this.waitingForDrain = true;
  }

  private isExport(name: string): boolean {
    return name === this.exp.name || name === "";
  }

  /** Hangs up on a client that broke the protocol; false, so that step() can return it. */
  private abort(message: string): false {
    this.hooks.onProtocolError?.(`${message}; closing the connection`);
    this.phase = "closing";
    this.input.clear();
    this.socket.destroy();
    return false;
  }
}

const hex = (value: number) => value.toString(16).padStart(8, "0");
