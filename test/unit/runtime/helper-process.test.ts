import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startHelper } from "../../../runtime/helper-process.ts";

const collect = async (stream: NodeJS.ReadableStream | null) => {
  const chunks: Buffer[] = [];
  for await (const chunk of stream!) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
};

describe("startHelper", () => {
  it("feeds stdin with backpressure and reads stdout; more than a pipe holds", async () => {
    const helper = startHelper("/bin/cat", []);
    const output = collect(helper.stdout);
    const data = Buffer.alloc(4 << 20, 7);
    for (let at = 0; at < data.length; at += 65536) assert.equal(await helper.feed(data.subarray(at, at + 65536)), true);
    helper.endInput();
    assert.ok((await output).equals(data));
    assert.deepEqual(await helper.exited, { code: 0, signal: null });
  });

  it("tells a helper that stopped reading from one that reads, and keeps its last stderr", async () => {
    const helper = startHelper("/bin/sh", ["-c", "head -c 10 >/dev/null; echo 'bad input at 10' >&2; exit 3"]);
    let accepted = true;
    for (let i = 0; i < 1000 && accepted; i++) accepted = await helper.feed(Buffer.alloc(65536));
    assert.equal(accepted, false, "feed() says it stopped reading");
    assert.deepEqual(await helper.exited, { code: 3, signal: null });
    assert.equal(helper.stderr(), "bad input at 10\n");
  });

  it("a program that cannot start is an exit with an error, not a throw", async () => {
    const helper = startHelper("/nonexistent/decoder", []);
    const exit = await helper.exited;
    assert.equal(exit.code, null);
    assert.match(String(exit.error?.message), /ENOENT/);
  });

  it("stop() kills it and resolves once it exited", async () => {
    const helper = startHelper("/bin/sleep", ["60"]);
    const exit = await helper.stop();
    assert.equal(exit.signal, "SIGKILL");
  });
});
