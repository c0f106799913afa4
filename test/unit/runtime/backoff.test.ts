import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backoffDelay, sleep } from "../../../runtime/backoff.ts";

const policy = { baseMs: 1000, capMs: 30000 };

describe("backoffDelay", () => {
  it("spreads delays over [0, base·2^attempt) (full jitter)", () => {
    assert.equal(backoffDelay(0, policy, () => 0), 0);
    assert.equal(backoffDelay(0, policy, () => 0.999999), 999);
    assert.equal(backoffDelay(3, policy, () => 0.5), 4000);
  });
  it("never exceeds the cap, even after many attempts", () => {
    assert.equal(backoffDelay(10, policy, () => 0.999999), 29999);
    assert.equal(backoffDelay(5000, policy, () => 0.5), 15000);
  });
  it("is random: a fleet does not retry in lockstep", () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(4, policy)));
    assert.ok(delays.size > 40);
  });
});

describe("sleep", () => {
  it("rejects at once with the abort reason", async () => {
    const controller = new AbortController();
    const started = Date.now();
    const pending = sleep(10_000, controller.signal);
    controller.abort(new Error("stop"));
    await assert.rejects(pending, { message: "stop" });
    assert.ok(Date.now() - started < 1000);
  });
});
