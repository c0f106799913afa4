// The parts of seek-bzip 2.0.0 (CommonJS, untyped) that bzip2-decoder.ts drives block by block.
declare module "seek-bzip" {
  interface ByteInput {
    readByte(): number;
    read(buffer: Uint8Array, offset: number, length: number): number;
  }
  interface BitReader {
    bitOffset: number;
    curByte: number;
    hasByte: boolean;
    read(bits: number): number;
  }
  interface Crc32 {
    getCRC(): number;
    updateCRCRun(value: number, count: number): void;
  }
  interface Bunzip {
    reader: BitReader;
    streamCRC: number;
    targetBlockCRC: number;
    blockCRC: Crc32;
    dbuf: Uint32Array;
    writePos: number;
    writeCurrent: number;
    writeCount: number;
    writeRun: number;
    _init_block(): boolean;
    _start_bunzip(input: ByteInput, output: unknown): void;
  }
  interface BunzipConstructor {
    new (input: ByteInput, output: unknown): Bunzip;
    Stream: new () => ByteInput;
  }
  const Bunzip: BunzipConstructor;
  export default Bunzip;
}
