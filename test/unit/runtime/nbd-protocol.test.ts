// Byte layouts checked against literals written from doc/proto.md, not against the module's own constants.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodeInfoRequest,
  decodeOptionHeader,
  decodeRequest,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeOptionReply,
  encodeSimpleReply,
} from "../../../runtime/nbd-protocol.ts";

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ""), "hex");

describe("nbd-protocol", () => {
  it("greets with NBDMAGIC, IHAVEOPT and the handshake flags", () => {
    assert.deepEqual(encodeGreeting(3), Buffer.concat([Buffer.from("NBDMAGICIHAVEOPT"), hex("0003")]));
  });

  it("encodes option replies and info payloads big-endian", () => {
    assert.deepEqual(
      encodeOptionReply(7, 3, encodeInfoExport(0x1_0000_0200, 0x0107)),
      hex("0003e889045565a9 00000007 00000003 0000000c  0000 0000000100000200 0107"),
    );
    assert.deepEqual(encodeInfoBlockSize(512, 4096, 1 << 25), hex("0003 00000200 00001000 02000000"));
    assert.deepEqual(encodeOptionReply(2, 0x80000001), hex("0003e889045565a9 00000002 80000001 00000000"));
  });

  it("pads NBD_OPT_EXPORT_NAME's answer with 124 zeroes unless told not to", () => {
    assert.deepEqual(encodeExportNameReply(1024, 3, false), hex("0000000000000400 0003"));
    const padded = encodeExportNameReply(1024, 3, true);
    assert.equal(padded.length, 134);
    assert.ok(padded.subarray(10).every((byte) => byte === 0));
  });

  it("decodes option headers and requests, and echoes the handle in the simple reply", () => {
    assert.deepEqual(decodeOptionHeader(hex("49484156454f5054 00000007 00000010")), {
      magic: 0x49484156454f5054n,
      option: 7,
      length: 16,
    });
    const request = decodeRequest(hex("25609513 0001 0000 0102030405060708 0000000100000000 00001000"));
    assert.deepEqual(request, {
      magic: 0x25609513,
      flags: 1,
      type: 0,
      handle: hex("0102030405060708"),
      offset: 0x100000000n,
      length: 4096,
    });
    assert.deepEqual(encodeSimpleReply(22, request.handle), hex("67446698 00000016 0102030405060708"));
  });

  it("decodes NBD_OPT_GO data and rejects lengths that do not add up", () => {
    assert.deepEqual(decodeInfoRequest(hex("00000004 726f6f74 0002 0003 0001")), { name: "root", requests: [3, 1] });
    assert.deepEqual(decodeInfoRequest(hex("00000000 0000")), { name: "", requests: [] });
    assert.equal(decodeInfoRequest(hex("00000000 00")), undefined, "shorter than the fixed fields");
    assert.equal(decodeInfoRequest(hex("00000009 726f6f74 0000")), undefined, "name longer than the data");
    assert.equal(decodeInfoRequest(hex("00000004 726f6f74 0002 0003")), undefined, "fewer requests than counted");
    assert.equal(decodeInfoRequest(hex("00000004 726f6f74 0000 0003")), undefined, "trailing bytes");
    assert.equal(decodeInfoRequest(hex("ffffffff 0000")), undefined, "a name length near 2^32");
  });
});
