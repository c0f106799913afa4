import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { SHA256_JOB } from "../../../runtime/hash-tee.ts";
import { prestartSliceWorker, startSliceWorker, type SliceWorker } from "../../../runtime/slice-worker.ts";

const write = (worker: SliceWorker, chunk: Buffer) => new Promise<void>((resolve, reject) => {
  worker.write(chunk, (error) => (error ? reject(error) : resolve()));
});

describe("startSliceWorker", () => {
  it("takes the prestarted thread, once, and its job runs there", async () => {
    const spare = prestartSliceWorker();
    assert.equal(prestartSliceWorker(), spare, "prestarting again keeps the spare");
    const first = startSliceWorker({ job: SHA256_JOB, sliceSize: 1 << 16, slices: 2 });
    const second = startSliceWorker({ job: SHA256_JOB, sliceSize: 1 << 16, slices: 2 });
    try {
      assert.equal(first.threadId, spare);
      assert.notEqual(second.threadId, spare);
      const data = randomBytes(300_000);
      for (const worker of [first, second]) {
        await write(worker, data);
        assert.equal(await worker.finish(), createHash("sha256").update(data).digest("hex"));
      }
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  it("reports a job that fails to start", async () => {
    const worker = startSliceWorker({ job: "() => { throw new Error('no such job'); }", sliceSize: 1024, slices: 2 });
    await assert.rejects(async () => {
      await write(worker, Buffer.alloc(4096));
      await worker.finish();
    }, /no such job/);
    await worker.close();
  });

  it("an untaken spare thread does not keep the process alive", () => {
    const script = `import("${new URL("../../../runtime/slice-worker.ts", import.meta.url).href}").then((m) => m.prestartSliceWorker());`;
    // Hanging is the failure: the timeout turns it into an error.
    execFileSync(process.execPath, ["--input-type=module", "-e", script], { timeout: 20_000 });
  });
});
