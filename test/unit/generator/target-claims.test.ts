// Refusing a second entry for a taken target must stay linear in the number of entries: this counts
// how often each request's name is looked at instead of timing anything.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ImportRequest } from "../../../generator/import-request.ts";
import { targetClaims } from "../../../generator/target-claims.ts";

function countingRequest(local: string, counter: { reads: number }): ImportRequest {
  const request = { origin: { path: "/proc/cmdline", what: "x" }, class: "machine", type: "raw", remote: "http://h/a", readOnly: false, verify: "no", blockdev: false, runtime: true } as Omit<ImportRequest, "local">;
  return Object.defineProperty(request, "local", { get: () => (counter.reads++, local), enumerable: true }) as ImportRequest;
}

test("the first request for a target keeps it; later ones learn who holds it", () => {
  const claim = targetClaims();
  const counter = { reads: 0 };
  const a = countingRequest("a", counter);
  assert.equal(claim(a), undefined);
  assert.equal(claim(countingRequest("b", counter)), undefined);
  assert.equal(claim(countingRequest("a", counter)), a);
  assert.equal(claim({ ...countingRequest("a", counter), class: "sysext" }), undefined);
});

test("regression: each request is looked at a constant number of times, however many came before", () => {
  const claim = targetClaims();
  const counter = { reads: 0 };
  const n = 4000;
  for (let i = 0; i < n; i++) claim(countingRequest(`image${i}`, counter));
  for (let i = 0; i < n; i++) claim(countingRequest(`image${i}`, counter));
  // Comparing each entry with all before it read the names n²/2 times (8 million here).
  assert.ok(counter.reads <= 2 * 2 * n, `${counter.reads} reads for ${2 * n} requests`);
});
