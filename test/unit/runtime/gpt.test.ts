import assert from "node:assert/strict";
import { mkdtempSync, openSync, closeSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { designatorOf, partitionTypeFor, pickPartition, readGpt, rootPartitionTypeFor } from "../../../runtime/gpt.ts";
import { X64 } from "./ddi-fixtures.ts";
import { copyImage, corruptByte, ESP_TYPE, makeExt4, makeGptImage, MIB, ROOT_X86_64 } from "./disk-fixtures.ts";

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), "netimport-gpt-")); });
after(() => rmSync(dir, { recursive: true, force: true }));

describe("readGpt", () => {
  for (const sectorSize of [512, 4096] as const) {
    test(`reads a GPT with ${sectorSize}-byte sectors`, async () => {
      const image = join(dir, `gpt-${sectorSize}.img`);
      makeGptImage(image, { sectorSize });
      const table = await readGpt(image);
      assert.equal(table?.sectorSize, sectorSize);
      const parts = table!.partitions;
      assert.equal(parts.length, 2);
      assert.deepEqual(parts.map((p) => [p.number, p.type, p.name, p.offset, p.size]), [
        [1, ESP_TYPE, "esp", 1 * MIB, 4 * MIB],
        [2, ROOT_X86_64, "root-x86-64", 5 * MIB, 32 * MIB],
      ]);
      assert.equal(parts[1]!.firstLba, (5 * MIB) / sectorSize);
      assert.equal(parts[1]!.lastLba, (37 * MIB) / sectorSize - 1);
      // Types and UUIDs are read in their mixed-endian on-disk form (ROOT_X86_64 is 4f68bce3-…, stored e3bc684f…).
      assert.match(parts[0]!.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      // The same through an open file descriptor.
      const fd = openSync(image, "r");
      try {
        assert.deepEqual((await readGpt(fd))?.partitions, parts);
      } finally {
        closeSync(fd);
      }
    });
  }

  test("a plain file system image has no partition table", async () => {
    const image = join(dir, "plain.img");
    makeExt4(image, 8 * MIB, "plain");
    assert.equal(await readGpt(image), undefined);
  });

  test("a damaged header or entry array is reported, not ignored", async () => {
    const header = join(dir, "bad-header.img");
    copyImage(join(dir, "gpt-512.img"), header);
    corruptByte(header, 512 + 40); // first usable LBA, covered by the header CRC
    await assert.rejects(readGpt(header), /bad-header\.img: GPT header checksum mismatch .*corrupt/);
    const entries = join(dir, "bad-entries.img");
    copyImage(join(dir, "gpt-512.img"), entries);
    corruptByte(entries, 1024 + 56); // partition 1's name
    await assert.rejects(readGpt(entries), /GPT partition entry array checksum mismatch/);
  });
});

describe("partition types", () => {
  test("DPS root and /usr types by architecture", () => {
    assert.equal(rootPartitionTypeFor("x64"), "4f68bce3-e8cd-4db1-96e7-fbcaf984b709");
    assert.equal(rootPartitionTypeFor("arm64"), "b921b045-1df0-41c3-af44-4c6f280d3fae");
    assert.equal(partitionTypeFor("usr", "x64"), "8484680c-9521-48c6-9c11-b0720656f69e");
    assert.equal(rootPartitionTypeFor("mips"), undefined);
  });

  test("DPS verity and verity-sig types (sd-gpt.h), and the designator of a type", () => {
    assert.deepEqual(
      (["root", "root-verity", "root-verity-sig", "usr", "usr-verity", "usr-verity-sig"] as const).map((d) => partitionTypeFor(d, "x64")),
      [X64.root, X64.rootVerity, X64.rootVeritySig, X64.usr, X64.usrVerity, X64.usrVeritySig],
    );
    assert.equal(partitionTypeFor("root-verity", "arm64"), "df3300ce-d69f-4c92-978c-9bfb0f38d820");
    assert.equal(partitionTypeFor("usr-verity-sig", "arm64"), "c23ce4ff-44bd-4b00-b2d4-b41b3419e02a");
    assert.equal(partitionTypeFor("root-verity-sig", "riscv64"), "efe0f087-ea8d-4469-821a-4c2a96a8386a");
    assert.equal(partitionTypeFor("usr", "loong64"), "e611c702-575c-4cbe-9a46-434fa0bf7e3f");
    assert.equal(partitionTypeFor("root-verity", "mips"), undefined);
    assert.equal(designatorOf(X64.usrVerity, "x64"), "usr-verity");
    assert.equal(designatorOf(X64.usrVerity, "arm64"), undefined);
    assert.equal(designatorOf(ESP_TYPE, "x64"), undefined);
  });

  test("pickPartition: root of this architecture, a number, or whole", () => {
    const part = (number: number, type: string) => ({ number, type, uuid: "", name: "", firstLba: 0, lastLba: 0, offset: 0, size: 0, attributes: 0n });
    const parts = [part(1, ESP_TYPE), part(2, ROOT_X86_64), part(3, ROOT_X86_64)];
    assert.equal(pickPartition(parts, "root", "x64")?.number, 2);
    assert.equal(pickPartition(parts, "root", "arm64"), undefined);
    assert.equal(pickPartition(parts, 3)?.number, 3);
    assert.equal(pickPartition(parts, 4), undefined);
    assert.equal(pickPartition(parts, "whole"), undefined);
  });
});
