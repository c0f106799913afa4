// Decode throughput of runtime/decoder.ts per format: the JS/zlib implementation against the system's
// CLI, on a 256 MiB disk-like image (zeros, random, text, binary), run once each. Output: MB/s of decoded
// bytes (1 MB = 10^6 bytes). Compressed inputs are cached under .cache/bench-decoders/.
//   node test/bench/decoder-throughput.ts [SIZE_MIB]
import { execFileSync } from "node:child_process";
import { createReadStream, existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { chooseDecoder, createDecoder, type Compression, type DecoderPreference } from "../../runtime/decoder.ts";
import { createSparseFileSink } from "../../runtime/sparse-file-sink.ts";
import { writeDiskImage } from "./disk-image.ts";

const mib = Number(process.argv[2] ?? 256);
const cache = fileURLToPath(new URL(`../../.cache/bench-decoders/${mib}m/`, import.meta.url));
mkdirSync(cache, { recursive: true });
const image = join(cache, "disk.raw");
if (!existsSync(image)) writeDiskImage(image, mib * 1024 * 1024);

const formats = {
  gzip: { ext: "gz", compress: ["gzip", "-6", "-c"] },
  zstd: { ext: "zst", compress: ["zstd", "-q", "-T2", "-19", "-c"] },
  xz: { ext: "xz", compress: ["xz", "-T2", "-6", "-c"] },
  bzip2: { ext: "bz2", compress: ["bzip2", "-9", "-c"] },
} as const;

async function time(input: string, format: Exclude<Compression, "none">, implementation: DecoderPreference): Promise<{ seconds: number; bytes: number; chose: string }> {
  let bytes = 0;
  const plan = chooseDecoder(format, "stream", implementation);
  if (plan.kind === "none") throw new Error(`${format} is compressed`);
  const chose = plan.kind === "process" ? "native" : plan.kind;
  const started = performance.now();
  await pipeline(createReadStream(input, { highWaterMark: 256 * 1024 }), createDecoder(plan),
    new Writable({ highWaterMark: 1 << 20, write(chunk: Buffer, _e, cb) { bytes += chunk.length; cb(); } }));
  return { seconds: (performance.now() - started) / 1000, bytes, chose };
}

const rate = (bytes: number, seconds: number) => (bytes / 1e6 / seconds).toFixed(0);
console.log(`image: ${mib} MiB disk-like, decoded MB/s (10^6 bytes/s), one run each`);
console.log("format | compressed | JS/zlib (impl) | native CLI | CLI alone (to /dev/null)");
for (const [name, format] of Object.entries(formats)) {
  const file = join(cache, `disk.raw.${format.ext}`);
  if (!existsSync(file)) {
    const [command, ...args] = format.compress;
    execFileSync("sh", ["-c", `${command} ${args.join(" ")} < "${image}" > "${file}.partial" && mv "${file}.partial" "${file}"`]);
  }
  const size = Number(execFileSync("stat", ["-c", "%s", file], { encoding: "utf8" }));
  const js = await time(file, name as Exclude<Compression, "none">, "js");
  const native = await time(file, name as Exclude<Compression, "none">, "native");
  const started = performance.now();
  execFileSync("sh", ["-c", `${format.compress[0]} -dc < "${file}" > /dev/null`]);
  const cli = (performance.now() - started) / 1000;
  console.log(`${name} | ${(size / 1048576).toFixed(1)} MiB | ${rate(js.bytes, js.seconds)} (${js.chose}) | ${rate(native.bytes, native.seconds)} | ${rate(js.bytes, cli)}`);
}

// The sparse sink on its own: the raw image (not compressed) into a file on the cache's file system.
const target = join(cache, "sink-test.raw");
rmSync(target, { force: true });
const sink = createSparseFileSink(target);
const started = performance.now();
await pipeline(createReadStream(image, { highWaterMark: 1 << 20 }), sink);
const seconds = (performance.now() - started) / 1000;
console.log(`sparse sink: ${rate(sink.bytesWritten, seconds)} MB/s, allocated ${(sink.result!.allocatedBytes / 1048576).toFixed(0)} MiB of ${(sink.result!.apparentSize / 1048576).toFixed(0)} MiB`);
rmSync(target, { force: true });
