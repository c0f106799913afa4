// Property: whatever a server does to a transfer (cuts at random offsets, a file replaced between two
// requests, If-Range or Range ignored, no validators), a pull either ends with DEST holding one whole
// file as served (never a splice of two), verified when asked, or fails and leaves nothing behind.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { pull } from "../../../runtime/pull.ts";
import { startFixtureServer, type FixtureBehaviour, type FixtureServer } from "../../support/http-fixture-server.ts";

const SIZE = 256 * 1024;
const ORIGINAL = randomBytes(SIZE);
const REPLACEMENT = randomBytes(SIZE); // same size: only the validators tell them apart
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

let dir: string;
let server: FixtureServer;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "netimport-resume-prop-"));
  mkdirSync(join(dir, "srv"));
  writeFileSync(join(dir, "srv", "os.raw"), ORIGINAL);
  writeFileSync(join(dir, "srv", "v2.raw"), REPLACEMENT);
  utimesSync(join(dir, "srv", "v2.raw"), new Date(), new Date(Date.now() + 60_000));
  writeFileSync(join(dir, "srv", "SHA256SUMS"), `${sha256(ORIGINAL)}  os.raw\n`);
  server = await startFixtureServer({ root: join(dir, "srv"), chunkSize: 16 * 1024 });
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Mostly true: a weighted coin, so that the rarer server kinds still come up in a small budget. */
const often = fc.integer({ min: 0, max: 3 }).map((n) => n > 0);
const rarely = often.map((b) => !b);

const behaviour: fc.Arbitrary<FixtureBehaviour> = fc.record({
  cutAt: fc.uniqueArray(fc.integer({ min: 1, max: SIZE - 1 }), { minLength: 1, maxLength: 3 }),
  // The file is replaced on the server after the first, second or third request (or never).
  replacedAfter: fc.constantFrom(undefined, 1, 1, 2, 3),
  ignoreIfRange: often,
  ignoreRange: rarely,
  noValidators: rarely,
}).map(({ cutAt, replacedAfter, ignoreIfRange, ignoreRange, noValidators }) => ({
  cutAt,
  ignoreIfRange,
  ignoreRange,
  ...(replacedAfter === undefined ? {} : { replacedBy: { path: "/v2.raw", afterRequests: replacedAfter } }),
  ...(noValidators ? { etag: null, noLastModified: true } : {}),
}));

test("a pull never splices two files, whatever the server does to the transfer (property)", async () => {
  let run = 0;
  await fc.assert(fc.asyncProperty(behaviour, fc.boolean(), async (b, verify) => {
    const out = join(dir, `out-${run++}`);
    mkdirSync(out);
    const dest = join(out, "os.raw");
    server.behave("/os.raw", b);
    try {
      await pull({
        url: `${server.url}/os.raw`, dest, type: "raw", verify: verify ? { kind: "checksum" } : { kind: "no" },
        idleTimeoutSeconds: 2, retries: 3, retryDelaySeconds: 0.001, info: () => {},
      });
      const got = readFileSync(dest);
      if (verify) assert.ok(got.equals(ORIGINAL), "a verified pull holds the original");
      else assert.ok(got.equals(ORIGINAL) || got.equals(REPLACEMENT), "one whole file");
    } catch (error) {
      // Failing is allowed (a checksum that no longer matches, retries used up); leaving anything is not.
      assert.match((error as Error).message, /checksum mismatch|from http|byte 0|Range|ETag|resume/, (error as Error).message);
      assert.deepEqual(readdirSync(out), [], "nothing left behind");
    } finally {
      server.behave("/os.raw", undefined);
    }
  }), { numRuns: 60, seed: 0x5eed, endOnFailure: true });
});
