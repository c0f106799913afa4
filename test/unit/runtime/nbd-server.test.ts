// The NBD server against real clients: QEMU's (qemu-img, qemu-io) over a Unix socket, and a raw socket
// speaking the protocol byte by byte for what the tools never send. Message layouts and numbers in this
// file are literals from doc/proto.md (NetworkBlockDevice/nbd), not the module's own constants.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { readFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  createNbdServer,
  MAX_BYTES_IN_FLIGHT,
  MAX_READ_LENGTH,
  MAX_READS_IN_FLIGHT,
  type NbdExport,
  type NbdServer,
} from "../../../runtime/nbd-server.ts";
import { tempDir } from "../../support/temp-dir.ts";
import { ByteQueue } from "../../../runtime/byte-queue.ts";

/** An odd number of 512-byte sectors, a few MiB of random bytes, one known pattern. */
const SIZE = 3 * 1024 * 1024 + 5 * 512;
const image = randomBytes(SIZE);
image.fill(0xab, 4096, 4608);

const READ = 0, WRITE = 1, DISC = 2, FLUSH = 3, TRIM = 4, CACHE = 5, WRITE_ZEROES = 6;
const EPERM = 1, EIO = 5, EINVAL = 22;
const REP_ACK = 1, REP_SERVER = 2, REP_INFO = 3;
const ERR_UNSUP = 2 ** 31 + 1, ERR_INVALID = 2 ** 31 + 3, ERR_UNKNOWN = 2 ** 31 + 6, ERR_TOO_BIG = 2 ** 31 + 9;
/** HAS_FLAGS | READ_ONLY | SEND_FLUSH | CAN_MULTI_CONN */
const TRANSMISSION_FLAGS = 0x0001 | 0x0002 | 0x0004 | 0x0100;

const dir = tempDir("netimport-nbd-");
const servers: NbdServer[] = [];
after(() => {
  for (const server of servers) {
    server.close();
    server.closeConnections();
  }
});

/** Serves an export ("root", the image above unless overridden) on a fresh Unix socket. */
async function serve(exp: Partial<NbdExport> = {}) {
  const seen = {
    readErrors: [] as { message: string; offset: number; length: number }[],
    protocolErrors: [] as string[],
    counts: [] as number[],
  };
  const server = createNbdServer(
    { name: "root", size: SIZE, read: async (offset, length) => image.subarray(offset, offset + length), ...exp },
    {
      onReadError: (error, offset, length) => seen.readErrors.push({ message: error.message, offset, length }),
      onProtocolError: (message) => seen.protocolErrors.push(message),
      onConnectionCount: (count) => seen.counts.push(count),
    },
  );
  const path = join(dir, `nbd-${servers.length}.sock`);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { server, path, url: `nbd+unix:///root?socket=${path}`, seen };
}

/** Runs a tool without blocking the event loop (the server runs in this process). */
function tool(command: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, output: stdout + stderr }));
  });
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Long enough for a write to reach the server as a chunk of its own. */
const turn = () => delay(1);

async function until(condition: () => boolean, what: string): Promise<void> {
  for (const started = Date.now(); !condition(); await delay(5)) {
    if (Date.now() - started > 3000) assert.fail(`timed out waiting for ${what}`);
  }
}

/** A latch: `wait` settles once `open()` was called. */
function latch() {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/** A client socket that reads exactly n bytes at a time. */
class RawClient {
  readonly socket: Socket;
  readonly closed: Promise<void>;
  private readonly queue = new ByteQueue();
  private ended = false;
  private wake: () => void = () => undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.queue.push(chunk);
      this.wake();
    });
    socket.on("error", () => undefined);
    socket.on("end", () => {
      this.ended = true;
      this.wake();
    });
    this.closed = new Promise((resolve) => socket.on("close", () => resolve()));
  }

  static connect(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path, () => resolve(new RawClient(socket)));
      socket.once("error", reject);
    });
  }

  /** Bytes received and not read yet. */
  get pending(): number {
    return this.queue.length;
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  async read(n: number): Promise<Buffer> {
    while (this.queue.length < n) {
      if (this.ended) throw new Error(`the server closed the connection with ${this.queue.length} of ${n} bytes to read`);
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    return this.queue.take(n);
  }
}

const u16 = (value: number) => Buffer.from([value >> 8, value & 0xff]);
const u32 = (value: number) => {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  return bytes;
};

/** C: "IHAVEOPT", option, data length, data. */
const option = (code: number, data: Buffer = Buffer.alloc(0)) =>
  Buffer.concat([Buffer.from("IHAVEOPT"), u32(code), u32(data.length), data]);

/** NBD_OPT_INFO / NBD_OPT_GO data: name length, name, request count, requests. */
const infoRequest = (name: string, infos: number[]) =>
  Buffer.concat([u32(Buffer.byteLength(name)), Buffer.from(name), u16(infos.length), ...infos.map(u16)]);

/** C: magic 0x25609513, flags, type, handle, offset, length. */
function request(type: number, handle: bigint, offset: number | bigint, length: number): Buffer {
  const bytes = Buffer.alloc(28);
  bytes.writeUInt32BE(0x25609513, 0);
  bytes.writeUInt16BE(type, 6);
  bytes.writeBigUInt64BE(handle, 8);
  bytes.writeBigUInt64BE(BigInt(offset), 16);
  bytes.writeUInt32BE(length, 24);
  return bytes;
}

/** S: magic 0x3e889045565a9, option, reply type, length, data. */
async function optionReply(client: RawClient) {
  const header = await client.read(20);
  assert.equal(header.readBigUInt64BE(0), 0x3e889045565a9n);
  return { option: header.readUInt32BE(8), type: header.readUInt32BE(12), data: await client.read(header.readUInt32BE(16)) };
}

/** Reads NBD_REP_INFO replies up to the final reply; returns the infos by type, and that final reply's type. */
async function infoReplies(client: RawClient, code: number) {
  const infos = new Map<number, Buffer>();
  for (;;) {
    const reply = await optionReply(client);
    assert.equal(reply.option, code);
    if (reply.type !== REP_INFO) return { infos, final: reply.type };
    const type = reply.data.readUInt16BE(0);
    assert.ok(!infos.has(type), `info ${type} sent twice`);
    infos.set(type, reply.data.subarray(2));
  }
}

/** Connects, checks the greeting (NBDMAGIC, IHAVEOPT, FIXED_NEWSTYLE|NO_ZEROES), sends the client flags. */
async function greet(path: string, clientFlags = 0b11): Promise<RawClient> {
  const client = await RawClient.connect(path);
  assert.deepEqual(await client.read(18), Buffer.concat([Buffer.from("NBDMAGICIHAVEOPT"), u16(0b11)]));
  client.write(u32(clientFlags));
  return client;
}

/** Into the transmission phase with NBD_OPT_GO, as nbd-client does. */
async function open(path: string): Promise<RawClient> {
  const client = await greet(path);
  client.write(option(7, infoRequest("root", [])));
  assert.equal((await infoReplies(client, 7)).final, REP_ACK);
  return client;
}

/**
 * Reads simple replies (magic 0x67446698, error, handle) until every expected handle was answered once;
 * `expected` gives each handle's read length (0 for commands without data).
 */
async function replies(client: RawClient, expected: Map<bigint, number>) {
  const got = new Map<bigint, { error: number; data: Buffer }>();
  const order: bigint[] = [];
  while (got.size < expected.size) {
    const header = await client.read(16);
    assert.equal(header.readUInt32BE(0), 0x67446698);
    const error = header.readUInt32BE(4);
    const handle = header.readBigUInt64BE(8);
    const length = expected.get(handle);
    assert.ok(length !== undefined, `a reply for handle ${handle}, which was never sent`);
    assert.ok(!got.has(handle), `handle ${handle} answered twice`);
    got.set(handle, { error, data: error === 0 ? await client.read(length) : Buffer.alloc(0) });
    order.push(handle);
  }
  return { got, order };
}

async function expectRead(client: RawClient, handle: bigint, offset: number, length: number): Promise<void> {
  client.write(request(READ, handle, offset, length));
  const { got } = await replies(client, new Map([[handle, length]]));
  assert.equal(got.get(handle)!.error, 0);
  assert.ok(got.get(handle)!.data.equals(image.subarray(offset, offset + length)), `the data at ${offset}`);
}

describe("createNbdServer, with QEMU's NBD client", { timeout: 10_000 }, () => {
  it("qemu-img sees the size and copies the export byte for byte", async () => {
    const { url } = await serve();
    const info = await tool("qemu-img", ["info", "--output=json", url]);
    assert.equal(info.code, 0, info.output);
    assert.equal(JSON.parse(info.output)["virtual-size"], SIZE);
    const copy = join(dir, "copy.raw");
    const convert = await tool("qemu-img", ["convert", "-f", "raw", "-O", "raw", url, copy]);
    assert.equal(convert.code, 0, convert.output);
    assert.ok((await readFile(copy)).equals(image));
  });

  it("qemu-io reads patterns, and a wrong pattern is noticed", async () => {
    const { url } = await serve();
    const right = await tool("qemu-io", ["-f", "raw", "-r", "-c", "read -P 0xab 4096 512", url]);
    assert.equal(right.code, 0, right.output);
    assert.match(right.output, /read 512\/512 bytes at offset 4096/);
    const wrong = await tool("qemu-io", ["-f", "raw", "-r", "-c", "read -P 0xab 8192 512", url]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.output, /Pattern verification failed/);
  });

  it("refuses qemu-io a writable open: the export is read-only", async () => {
    const { url } = await serve();
    const write = await tool("qemu-io", ["-f", "raw", "-c", "write -P 0x11 0 512", url]);
    assert.equal(write.code, 1);
    assert.match(write.output, /Permission denied|read-only/i);
  });

  it("a failing read is an I/O error in qemu-io, reported once, and the next read still works", async () => {
    const bad = 1024 * 1024;
    const { url, seen } = await serve({
      read: async (offset, length) => {
        if (offset < bad + 4096 && offset + length > bad) throw new Error("range request failed: 503");
        return image.subarray(offset, offset + length);
      },
    });
    const io = await tool("qemu-io", ["-f", "raw", "-r", "-c", `read ${bad} 4096`, "-c", "read -P 0xab 4096 512", url]);
    assert.equal(io.code, 1);
    assert.match(io.output, /read failed: Input\/output error/);
    assert.match(io.output, /read 512\/512 bytes at offset 4096/);
    assert.deepEqual(seen.readErrors, [{ message: "range request failed: 503", offset: bad, length: 4096 }]);
  });
});

describe("createNbdServer, option haggling by hand", { timeout: 10_000 }, () => {
  it("NBD_OPT_GO answers the information asked for, then enters transmission", async () => {
    const { path } = await serve();
    const client = await greet(path);
    // BLOCK_SIZE, NAME, DESCRIPTION (which it may ignore) and an unknown type (which it must ignore)
    client.write(option(7, infoRequest("root", [3, 1, 2, 0x7777])));
    const { infos, final } = await infoReplies(client, 7);
    assert.equal(final, REP_ACK);
    const exportInfo = infos.get(0)!;
    assert.equal(exportInfo.length, 10);
    assert.equal(exportInfo.readBigUInt64BE(0), BigInt(SIZE));
    assert.equal(exportInfo.readUInt16BE(8), TRANSMISSION_FLAGS);
    const blockSize = infos.get(3)!;
    assert.deepEqual([blockSize.readUInt32BE(0), blockSize.readUInt32BE(4), blockSize.readUInt32BE(8)], [512, 4096, 32 << 20]);
    assert.equal(infos.get(1)!.toString(), "root");
    assert.deepEqual([...infos.keys()].sort(), [0, 1, 3]);
    await expectRead(client, 1n, 4096, 512);
  });

  it("NBD_OPT_GO without requests (nbd-client's) gets NBD_INFO_EXPORT alone; '' is the default export", async () => {
    const { path } = await serve();
    const client = await greet(path);
    client.write(option(7, infoRequest("", [])));
    const { infos, final } = await infoReplies(client, 7);
    assert.equal(final, REP_ACK);
    assert.deepEqual([...infos.keys()], [0]);
    await expectRead(client, 1n, SIZE - 512, 512);
  });

  it("NBD_OPT_EXPORT_NAME answers size and flags, with the 124 zeroes unless NO_ZEROES was set", async () => {
    const { path } = await serve();
    const padded = await greet(path, 0b01);
    padded.write(option(1, Buffer.from("root")));
    const answer = await padded.read(134);
    assert.equal(answer.readBigUInt64BE(0), BigInt(SIZE));
    assert.equal(answer.readUInt16BE(8), TRANSMISSION_FLAGS);
    assert.ok(answer.subarray(10).every((byte) => byte === 0));
    await expectRead(padded, 1n, 0, 4096); // a reply magic right after: exactly 124 zeroes

    const bare = await greet(path, 0b11);
    bare.write(option(1, Buffer.alloc(0)));
    const short = await bare.read(10);
    assert.equal(short.readBigUInt64BE(0), BigInt(SIZE));
    await expectRead(bare, 2n, 512, 512);
  });

  it("lists the export, refuses what it does not do, and keeps haggling after errors", async () => {
    const { path } = await serve();
    const client = await greet(path);
    const ask = async (code: number, data?: Buffer) => {
      client.write(option(code, data));
      const reply = await optionReply(client);
      assert.equal(reply.option, code);
      return reply;
    };
    const listed = await ask(3);
    assert.equal(listed.type, REP_SERVER);
    assert.deepEqual(listed.data, Buffer.concat([u32(4), Buffer.from("root")]));
    assert.equal((await optionReply(client)).type, REP_ACK);
    assert.equal((await ask(3, Buffer.from("x"))).type, ERR_INVALID, "NBD_OPT_LIST with data");
    assert.equal((await ask(8)).type, ERR_UNSUP, "NBD_OPT_STRUCTURED_REPLY: simple replies only");
    assert.equal((await ask(5)).type, ERR_UNSUP, "NBD_OPT_STARTTLS");
    assert.equal((await ask(0x1234, Buffer.alloc(64 * 1024, 1))).type, ERR_UNSUP, "an unknown option of 64 KiB");
    assert.equal((await ask(6, infoRequest("nope", []))).type, ERR_UNKNOWN, "NBD_OPT_INFO for another export");
    assert.equal((await ask(7, infoRequest("nope", [3]))).type, ERR_UNKNOWN, "NBD_OPT_GO for another export");
    assert.equal((await ask(7, infoRequest("root", [3]).subarray(0, 9))).type, ERR_INVALID, "a truncated NBD_OPT_GO");

    client.write(option(6, infoRequest("root", [])));
    const info = await infoReplies(client, 6);
    assert.equal(info.final, REP_ACK);
    assert.deepEqual([...info.infos.keys()], [0], "no NBD_INFO_BLOCK_SIZE unless asked for");
    client.write(option(7, infoRequest("root", [])));
    assert.equal((await infoReplies(client, 7)).final, REP_ACK);
    await expectRead(client, 1n, 0, 512);
  });

  it("NBD_OPT_ABORT is acknowledged, then the connection closes", async () => {
    const { path, seen } = await serve();
    const client = await greet(path);
    client.write(option(2));
    const reply = await optionReply(client);
    assert.deepEqual([reply.option, reply.type], [2, REP_ACK]);
    await client.closed;
    assert.deepEqual(seen.protocolErrors, []);
  });

  it("hangs up on NBD_OPT_EXPORT_NAME for another export, and on unknown client flags", async () => {
    const { path, seen } = await serve();
    const wrongName = await greet(path);
    wrongName.write(option(1, Buffer.from("nope")));
    await wrongName.closed;
    assert.equal(wrongName.pending, 0);
    const wrongFlags = await greet(path, 0b101);
    await wrongFlags.closed;
    assert.equal(seen.protocolErrors.length, 2);
    assert.match(seen.protocolErrors[0]!, /export 'nope'/);
    assert.match(seen.protocolErrors[1]!, /client flags 0x00000005/);
  });

  it("refuses an option announcing more than 64 KiB before reading any of it, and hangs up", async () => {
    const { path, seen } = await serve();
    const client = await greet(path);
    client.write(Buffer.concat([Buffer.from("IHAVEOPT"), u32(7), u32(2 ** 32 - 1)]));
    const reply = await optionReply(client);
    assert.deepEqual([reply.option, reply.type], [7, ERR_TOO_BIG]);
    await client.closed;
    assert.match(seen.protocolErrors.join("\n"), /4294967295 bytes/);
  });
});

describe("createNbdServer, transmission by hand", { timeout: 10_000 }, () => {
  it("parses messages split at every byte boundary", async () => {
    const { path } = await serve();
    const client = await RawClient.connect(path);
    await client.read(18);
    for (const byte of Buffer.concat([u32(0b11), option(7, infoRequest("root", [3]))])) {
      client.write(Buffer.from([byte]));
      await turn();
    }
    assert.equal((await infoReplies(client, 7)).final, REP_ACK);
    for (let cut = 1; cut < 28; cut++) {
      const read = request(READ, BigInt(cut), cut * 512, 512);
      client.write(read.subarray(0, cut));
      await turn();
      client.write(read.subarray(cut));
      const { got } = await replies(client, new Map([[BigInt(cut), 512]]));
      assert.ok(got.get(BigInt(cut))!.data.equals(image.subarray(cut * 512, cut * 512 + 512)), `cut at ${cut}`);
    }
  });

  it("answers many requests sent in one write concurrently, each with its own handle", async () => {
    const { path } = await serve({
      read: async (offset, length) => {
        await delay(randomInt(10));
        return image.subarray(offset, offset + length);
      },
    });
    const client = await open(path);
    const wanted = new Map<bigint, { offset: number; length: number }>();
    for (let i = 0; i < 100; i++) {
      wanted.set(0xfeed_0000_0000_0000n + BigInt(i), { offset: randomInt(SIZE / 512 - 128) * 512, length: randomInt(1, 129) * 512 });
    }
    client.write(Buffer.concat([...wanted].map(([handle, { offset, length }]) => request(READ, handle, offset, length))));
    const { got, order } = await replies(client, new Map([...wanted].map(([handle, { length }]) => [handle, length])));
    for (const [handle, { offset, length }] of wanted) {
      assert.equal(got.get(handle)!.error, 0);
      assert.ok(got.get(handle)!.data.equals(image.subarray(offset, offset + length)), `handle ${handle}`);
    }
    assert.notDeepEqual(order, [...wanted.keys()], "answered as the reads finished, not one after another");
  });

  it("answers reads outside the export with EINVAL and no data, and stays in step", async () => {
    const { path } = await serve();
    const client = await open(path);
    client.write(
      Buffer.concat([
        request(READ, 1n, SIZE - 512, 1024), // crosses the end
        request(READ, 2n, SIZE, 512), // starts at the end
        request(READ, 3n, 2n ** 64n - 512n, 1024), // offset + length wraps around 64 bits
        request(READ, 4n, 2n ** 63n, 0), // far beyond, even if empty
        request(READ, 5n, SIZE, 0), // empty, at the end: fine
        request(READ, 6n, SIZE - 512, 512), // the last sector
      ]),
    );
    const { got } = await replies(client, new Map([[1n, 0], [2n, 0], [3n, 0], [4n, 0], [5n, 0], [6n, 512]]));
    assert.deepEqual([1n, 2n, 3n, 4n, 5n, 6n].map((handle) => got.get(handle)!.error), [EINVAL, EINVAL, EINVAL, EINVAL, 0, 0]);
    assert.ok(got.get(6n)!.data.equals(image.subarray(SIZE - 512)));
  });

  it("serves a read of exactly the maximum payload, and refuses a larger one with EINVAL", async () => {
    const zeros = Buffer.alloc(MAX_READ_LENGTH);
    let calls = 0;
    const { path } = await serve({
      size: 4 * MAX_READ_LENGTH,
      read: async (_offset, length) => {
        calls++;
        return zeros.subarray(0, length);
      },
    });
    const client = await open(path);
    client.write(Buffer.concat([request(READ, 1n, 0, MAX_READ_LENGTH + 512), request(READ, 2n, MAX_READ_LENGTH, MAX_READ_LENGTH)]));
    const { got } = await replies(client, new Map([[1n, 0], [2n, MAX_READ_LENGTH]]));
    assert.equal(got.get(1n)!.error, EINVAL);
    assert.equal(got.get(2n)!.error, 0);
    assert.equal(got.get(2n)!.data.length, MAX_READ_LENGTH);
    assert.equal(calls, 1, "the oversized read never reached the export");
  });

  it("refuses writes with EPERM, skipping their payload however it arrives; flush is fine, unknown is EINVAL", async () => {
    const { path } = await serve();
    const client = await open(path);
    // A payload made of read requests: parsed as requests, it would draw replies for handle 99.
    const payload = Buffer.concat(Array.from({ length: 147 }, () => request(READ, 99n, 0, 512))).subarray(0, 4096);
    const stream = Buffer.concat([
      request(WRITE, 1n, 0, 4096),
      payload,
      request(TRIM, 2n, 0, 4096),
      request(WRITE_ZEROES, 3n, 0, 4096),
      request(FLUSH, 4n, 0, 0),
      request(CACHE, 5n, 0, 512),
      request(99, 6n, 0, 512),
      request(WRITE, 7n, 512, 0),
      request(READ, 8n, 8192, 4096),
    ]);
    let at = 0;
    for (const cut of [10, 28, 29, 1000, 4123, 4124, stream.length]) {
      client.write(stream.subarray(at, cut));
      at = cut;
      await turn();
    }
    const { got } = await replies(client, new Map([[1n, 0], [2n, 0], [3n, 0], [4n, 0], [5n, 0], [6n, 0], [7n, 0], [8n, 4096]]));
    assert.deepEqual(
      [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n].map((handle) => got.get(handle)!.error),
      [EPERM, EPERM, EPERM, 0, EINVAL, EINVAL, EPERM, 0],
    );
    assert.ok(got.get(8n)!.data.equals(image.subarray(8192, 8192 + 4096)));
  });

  it("a read callback that fails answers EIO, is reported once, and the connection lives on", async () => {
    const { path, seen } = await serve({
      read: (offset, length) => {
        if (offset === 0) return Promise.reject(new Error("HTTP 503"));
        if (offset === 512) return Promise.resolve(image.subarray(0, 100)); // short: must not desync the stream
        if (offset === 1024) throw new Error("thrown, not rejected");
        return Promise.resolve(image.subarray(offset, offset + length));
      },
    });
    const client = await open(path);
    client.write(Buffer.concat([request(READ, 1n, 0, 512), request(READ, 2n, 512, 512), request(READ, 3n, 1024, 512)]));
    const { got } = await replies(client, new Map([[1n, 0], [2n, 0], [3n, 0]]));
    assert.deepEqual([1n, 2n, 3n].map((handle) => got.get(handle)!.error), [EIO, EIO, EIO]);
    await expectRead(client, 4n, 4096, 512);
    const errors = seen.readErrors.sort((a, b) => a.offset - b.offset);
    assert.deepEqual(errors.map(({ offset, length }) => [offset, length]), [[0, 512], [512, 512], [1024, 512]]);
    assert.equal(errors[0]!.message, "HTTP 503");
    assert.match(errors[1]!.message, /gave 100 bytes for a read of 512 bytes at 512/);
    assert.equal(errors[2]!.message, "thrown, not rejected");
  });

  it("hangs up on a request with a bad magic", async () => {
    const { path, seen } = await serve();
    const client = await open(path);
    const bad = request(READ, 1n, 0, 512);
    bad.writeUInt32BE(0x12345678, 0);
    client.write(Buffer.concat([bad, request(READ, 2n, 0, 512)]));
    await client.closed;
    assert.equal(client.pending, 0, "nothing answered");
    assert.deepEqual(seen.protocolErrors, ["NBD request with bad magic 0x12345678; closing the connection"]);
  });

  it("NBD_CMD_DISC answers the reads in flight, then closes; nothing after it is served", async () => {
    const { path } = await serve({
      read: async (offset, length) => {
        await delay(50);
        return image.subarray(offset, offset + length);
      },
    });
    const client = await open(path);
    client.write(Buffer.concat([request(READ, 1n, 0, 4096), request(DISC, 2n, 0, 0), request(READ, 3n, 0, 512)]));
    const { got } = await replies(client, new Map([[1n, 4096]]));
    assert.ok(got.get(1n)!.data.equals(image.subarray(0, 4096)));
    await client.closed;
    assert.equal(client.pending, 0);
  });

  it("a client that shuts down its sending side still gets its replies", async () => {
    const { path } = await serve();
    const client = await open(path);
    client.socket.end(request(READ, 1n, 8192, 512));
    const { got } = await replies(client, new Map([[1n, 512]]));
    assert.ok(got.get(1n)!.data.equals(image.subarray(8192, 8704)));
    await client.closed;
  });
});

describe("createNbdServer, limits", { timeout: 10_000 }, () => {
  it(`stops reading requests while ${MAX_READS_IN_FLIGHT} reads are in flight, and serves the rest as they finish`, async () => {
    const gate = latch();
    let calls = 0;
    const { path } = await serve({
      read: async (offset, length) => {
        calls++;
        await gate.wait;
        return image.subarray(offset, offset + length);
      },
    });
    const client = await open(path);
    client.write(Buffer.concat(Array.from({ length: 100 }, (_, i) => request(READ, BigInt(i), i * 512, 512))));
    await until(() => calls >= MAX_READS_IN_FLIGHT, "the first reads");
    await delay(50);
    assert.equal(calls, MAX_READS_IN_FLIGHT);
    gate.open();
    const { got } = await replies(client, new Map(Array.from({ length: 100 }, (_, i) => [BigInt(i), 512])));
    for (const [handle, { data }] of got) assert.ok(data.equals(image.subarray(Number(handle) * 512, Number(handle) * 512 + 512)));
    assert.equal(calls, 100);
  });

  it(`stops reading requests while ${MAX_BYTES_IN_FLIGHT >> 20} MiB are being read`, async () => {
    const gate = latch();
    const chunk = 4 << 20;
    const zeros = Buffer.alloc(chunk);
    let calls = 0;
    const { path } = await serve({
      size: 1 << 30,
      read: async (_offset, length) => {
        calls++;
        await gate.wait;
        return zeros.subarray(0, length);
      },
    });
    const client = await open(path);
    client.write(Buffer.concat(Array.from({ length: 20 }, (_, i) => request(READ, BigInt(i), i * chunk, chunk))));
    await until(() => calls >= MAX_BYTES_IN_FLIGHT / chunk, "the first reads");
    await delay(50);
    assert.equal(calls, MAX_BYTES_IN_FLIGHT / chunk);
    gate.open();
    const { got } = await replies(client, new Map(Array.from({ length: 20 }, (_, i) => [BigInt(i), chunk])));
    assert.equal(got.size, 20);
    assert.equal(calls, 20);
  });

  it("stops reading requests while the client does not take its replies", async () => {
    let calls = 0;
    const chunk = 256 * 1024;
    const { path } = await serve({
      read: async (offset, length) => {
        calls++;
        return image.subarray(offset, offset + length);
      },
    });
    const client = await open(path);
    client.socket.pause();
    const count = 400; // 100 MiB of replies
    client.write(Buffer.concat(Array.from({ length: count }, (_, i) => request(READ, BigInt(i), (i % 12) * chunk, chunk))));
    await until(() => calls > 0, "the first reads");
    await delay(100);
    assert.ok(calls <= MAX_READS_IN_FLIGHT, `${calls} reads started while the client read no reply`);
    client.socket.resume();
    const { got } = await replies(client, new Map(Array.from({ length: count }, (_, i) => [BigInt(i), chunk])));
    assert.ok(got.get(13n)!.data.equals(image.subarray(chunk, 2 * chunk)));
    assert.equal(calls, count);
  });

  it("starts no read for requests still buffered once closeConnections() dropped the connection", async () => {
    const gate = latch();
    let calls = 0;
    const { server, path } = await serve({
      read: async (offset, length) => {
        calls++;
        await gate.wait;
        return image.subarray(offset, offset + length);
      },
    });
    const client = await open(path);
    client.write(Buffer.concat(Array.from({ length: 100 }, (_, i) => request(READ, BigInt(i), i * 512, 512))));
    await until(() => calls >= MAX_READS_IN_FLIGHT, "the first reads");
    server.closeConnections();
    await client.closed;
    gate.open();
    await delay(50);
    assert.equal(calls, MAX_READS_IN_FLIGHT);
  });

  it("counts connections, and closeConnections() drops them all", async () => {
    const { server, path, seen } = await serve();
    const transmitting = await open(path);
    const haggling = await greet(path);
    await until(() => seen.counts.length === 2, "both connections");
    server.closeConnections();
    await Promise.all([transmitting.closed, haggling.closed]);
    await until(() => seen.counts.length === 4, "both closes");
    assert.deepEqual(seen.counts, [1, 2, 1, 0]);
  });
});
