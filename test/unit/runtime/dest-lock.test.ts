import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { describe, it } from "node:test";
import { lockDestination, lockFolderStorage } from "../../../runtime/dest-lock.ts";

const LOCK_MODULE = resolve(import.meta.dirname, "../../../runtime/dest-lock.ts");

describe("lockDestination", () => {
  it("lets one holder in; the second learns who holds it; release lets the next in", async () => {
    const dest = `/run/machines/lock-test-${process.pid}.raw`;
    const first = await lockDestination(dest);
    await assert.rejects(lockDestination(dest), {
      name: "LockedError", pid: process.pid, message: `another netimport pull (pid ${process.pid}) is writing ${dest}`,
    });
    const other = await lockDestination(`${dest}.other`);
    await first.release();
    await first.release();
    const again = await lockDestination(dest);
    await again.release();
    await other.release();
  });

  it("is released when its holder is killed (no stale lock after SIGKILL)", async () => {
    const dest = `/run/machines/killed-${process.pid}.raw`;
    const child = spawn(process.execPath, ["--input-type=module", "-e",
      `const { lockDestination } = await import(${JSON.stringify(LOCK_MODULE)}); await lockDestination(${JSON.stringify(dest)}); console.log("locked"); setInterval(() => {}, 1000);`,
    ], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((done) => child.stdout.on("data", (text: Buffer) => text.toString().includes("locked") && done()));
    await assert.rejects(lockDestination(dest), { name: "LockedError", pid: child.pid });
    child.kill("SIGKILL");
    await new Promise((done) => child.on("close", done));
    const lock = await lockDestination(dest);
    await lock.release();
  });
});

describe("lockFolderStorage", () => {
  it("waits for the holder instead of failing", async () => {
    const dir = `/run/machines-${process.pid}`;
    const first = await lockFolderStorage(dir);
    let got = false;
    const second = lockFolderStorage(dir).then((lock) => { got = true; return lock; });
    await new Promise((done) => setTimeout(done, 50));
    assert.equal(got, false);
    await first.release();
    await (await second).release();
    assert.equal(got, true);
  });
});
