// Which partitions belong together, on partition tables written as data (no disks needed).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Partition } from "../../../runtime/gpt.ts";
import { pairVerityPartitions } from "../../../runtime/verity-pairing.ts";
import type { VeritySig } from "../../../runtime/verity-sig.ts";
import { uuidsOf, X64 } from "./ddi-fixtures.ts";

const HASH_A = "aa".repeat(16) + "a1".repeat(16);
const HASH_B = "bb".repeat(16) + "b1".repeat(16);
let next = 1;
function part(type: string, uuid = `00000000-0000-0000-0000-${String(next).padStart(12, "0")}`, attributes = 0n): Partition {
  const number = next++;
  return { number, type, uuid, name: `p${number}`, firstLba: 0, lastLba: 0, offset: 0, size: 0, attributes };
}
const sig = (rootHash: string): VeritySig => ({ rootHash, signature: Buffer.from("x"), json: JSON.stringify({ rootHash }) });
const none = new Map<number, VeritySig>();

describe("the partition UUIDs a root hash names", () => {
  test("data = the first 128 bits, verity = the last 128 bits, as UUID text in byte order", () => {
    const hash = "00112233445566778899aabbccddeeff" + "0123456789abcdef0123456789abcdef";
    const data = part(X64.root, "00112233-4455-6677-8899-aabbccddeeff");
    const verity = part(X64.rootVerity, "01234567-89ab-cdef-0123-456789abcdef");
    const p = pairVerityPartitions({ partitions: [part(X64.root), data, part(X64.rootVerity), verity], kind: "root", arch: "x64", rootHash: hash, signatures: none });
    assert.deepEqual([p?.data, p?.verity], [data, verity]);
    // The same as the fixtures (and systemd-repart) derive them.
    const a = uuidsOf(HASH_A);
    const pa = pairVerityPartitions({ partitions: [part(X64.root), part(X64.root, a.data), part(X64.rootVerity), part(X64.rootVerity, a.verity)], kind: "root", arch: "x64", rootHash: HASH_A, signatures: none });
    assert.deepEqual([pa?.data.uuid, pa?.verity?.uuid], [a.data, a.verity]);
  });
});

describe("pairVerityPartitions", () => {
  test("no partition of the kind: undefined, unless a hash demands one", () => {
    const partitions = [part(X64.esp)];
    assert.equal(pairVerityPartitions({ partitions, kind: "root", arch: "x64", signatures: none }), undefined);
    assert.throws(() => pairVerityPartitions({ partitions, kind: "usr", arch: "x64", rootHash: HASH_A, signatures: none }), /usrhash= was given, but the image has no usr partition for x64/);
  });

  test("a root partition without verity", () => {
    const root = part(X64.root);
    const p = pairVerityPartitions({ partitions: [part(X64.esp), root], kind: "root", arch: "x64", signatures: none });
    assert.deepEqual(p, { kind: "root", data: root, notes: [] });
  });

  test("root + verity + sig: the hash from the signature pairs them by UUID", () => {
    const u = uuidsOf(HASH_A);
    const root = part(X64.root, u.data), verity = part(X64.rootVerity, u.verity), sigPart = part(X64.rootVeritySig);
    const p = pairVerityPartitions({ partitions: [root, verity, sigPart], kind: "root", arch: "x64", signatures: new Map([[sigPart.number, sig(HASH_A)]]) });
    assert.equal(p?.data, root);
    assert.equal(p?.verity, verity);
    assert.equal(p?.signature?.partition, sigPart);
    assert.equal(p?.rootHash, HASH_A);
    assert.equal(p?.rootHashFrom, "signature");
  });

  test("a verity partition and no hash: paired as the only one (the verity step then asks for a hash)", () => {
    const root = part(X64.root), verity = part(X64.rootVerity);
    const p = pairVerityPartitions({ partitions: [root, verity], kind: "root", arch: "x64", signatures: none });
    assert.equal(p?.verity, verity);
    assert.equal(p?.rootHash, undefined);
    assert.equal(p?.signature, undefined);
  });

  test("two root partitions (A/B): the one the root hash names, else the first, saying so", () => {
    const a = uuidsOf(HASH_A), b = uuidsOf(HASH_B);
    const rootA = part(X64.root, a.data), verityA = part(X64.rootVerity, a.verity);
    const rootB = part(X64.root, b.data), verityB = part(X64.rootVerity, b.verity);
    const partitions = [rootA, verityA, rootB, verityB];
    const byHash = pairVerityPartitions({ partitions, kind: "root", arch: "x64", rootHash: HASH_B, signatures: none });
    assert.deepEqual([byHash?.data, byHash?.verity, byHash?.rootHashFrom], [rootB, verityB, "given"]);
    assert.deepEqual(byHash?.notes, ["of 2 root partitions, the one the root hash names"]);
    // A signature partition per slot: the first signature that names a root partition wins.
    const sigB = part(X64.rootVeritySig);
    const bySig = pairVerityPartitions({ partitions: [...partitions, sigB], kind: "root", arch: "x64", signatures: new Map([[sigB.number, sig(HASH_B)]]) });
    assert.deepEqual([bySig?.data, bySig?.signature?.partition], [rootB, sigB]);
    // Without verity partitions and without a hash: the first, said.
    const plain = pairVerityPartitions({ partitions: [part(X64.root), part(X64.root)], kind: "root", arch: "x64", signatures: none });
    assert.match(plain!.notes[0]!, /^the first of 2 root partitions \(\d+, \d+\): no root hash names one$/);
    // Two verity partitions and nothing to tell them apart: refused.
    assert.throws(() => pairVerityPartitions({ partitions, kind: "root", arch: "x64", signatures: none }), /has 2 root-verity partitions \(\d+, \d+\) and no root hash to tell which one is partition \d+'s/);
  });

  test("a hash that names no partition: the first data partition (said), the only verity partition", () => {
    const root = part(X64.root), verity = part(X64.rootVerity);
    const p = pairVerityPartitions({ partitions: [root, part(X64.root), verity], kind: "root", arch: "x64", rootHash: HASH_A, signatures: none });
    assert.deepEqual([p?.data, p?.verity], [root, verity]);
    assert.match(p!.notes[0]!, /none has the UUID aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa the root hash names/);
  });

  test("a given hash wins over the signature partition, whose JSON is then not used unless it matches", () => {
    const u = uuidsOf(HASH_A);
    const root = part(X64.root, u.data), verity = part(X64.rootVerity, u.verity), sigPart = part(X64.rootVeritySig);
    const partitions = [root, verity, sigPart];
    const other = pairVerityPartitions({ partitions, kind: "root", arch: "x64", rootHash: HASH_A, signatures: new Map([[sigPart.number, sig(HASH_B)]]) });
    assert.deepEqual([other?.rootHash, other?.rootHashFrom, other?.signature], [HASH_A, "given", undefined]);
    const same = pairVerityPartitions({ partitions, kind: "root", arch: "x64", rootHash: HASH_A, signatures: new Map([[sigPart.number, sig(HASH_A)]]) });
    assert.equal(same?.signature?.partition, sigPart);
  });

  test("verity demanded but missing: a given hash, or a signature without a verity partition", () => {
    const root = part(X64.root);
    assert.throws(() => pairVerityPartitions({ partitions: [root], kind: "root", arch: "x64", rootHash: HASH_A, signatures: none }), (e: Error) =>
      e.name === "VerityPairingError" && /^roothash= was given, but the image has no root-verity partition for root partition \d+$/.test(e.message));
    const sigPart = part(X64.rootVeritySig);
    assert.throws(() => pairVerityPartitions({ partitions: [root, sigPart], kind: "root", arch: "x64", signatures: new Map([[sigPart.number, sig(HASH_A)]]) }), /has a root-verity-sig partition \(\d+\) but no root-verity partition/);
    assert.throws(() => pairVerityPartitions({ partitions: [root], kind: "root", arch: "x64", rootHash: "abc", signatures: none }), /roothash= must be an even number of at least 32 hexadecimal digits/);
  });

  test("/usr partitions pair the same way; no-auto partitions are ignored; other architectures' types are not ours", () => {
    const u = uuidsOf(HASH_A);
    const usr = part(X64.usr, u.data), verity = part(X64.usrVerity, u.verity);
    const p = pairVerityPartitions({ partitions: [part(X64.root), usr, verity], kind: "usr", arch: "x64", rootHash: HASH_A, signatures: none });
    assert.deepEqual([p?.data, p?.verity], [usr, verity]);
    const hidden = part(X64.root, undefined, 1n << 63n);
    assert.equal(pairVerityPartitions({ partitions: [hidden], kind: "root", arch: "x64", signatures: none }), undefined);
    assert.equal(pairVerityPartitions({ partitions: [part(X64.root)], kind: "root", arch: "arm64", signatures: none }), undefined);
  });
});
