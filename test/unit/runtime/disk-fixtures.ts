// Real disk images for the GPT and loop device tests, made with sfdisk and mkfs.ext4 (we are root).
import { execFileSync } from "node:child_process";
import { closeSync, openSync, readSync, writeSync } from "node:fs";

export const MIB = 1024 * 1024;
export const ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
export const ROOT_X86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
export const ROOT_LABEL = "nimport-root";

const sh = (command: string, args: string[], input?: string) =>
  execFileSync(command, args, { encoding: "utf8", stdio: ["pipe", "pipe", "pipe"], ...(input === undefined ? {} : { input }) });

/** An ext4 file system image of `size` bytes labelled `label`. */
export function makeExt4(path: string, size: number, label: string): void {
  sh("truncate", ["-s", String(size), path]);
  sh("mkfs.ext4", ["-q", "-F", "-L", label, "-O", "^has_journal", path]);
}

/**
 * A 48 MiB GPT image: partition 1 an (empty) ESP of 4 MiB at 1 MiB, partition 2 an x86-64 root partition
 * of 32 MiB holding an ext4 labelled ROOT_LABEL. With 4096-byte sectors the table is written through a
 * loop device with that sector size, as on a 4Kn disk.
 */
export function makeGptImage(path: string, options: { sectorSize?: 512 | 4096; rootType?: string } = {}): void {
  const sectorSize = options.sectorSize ?? 512;
  sh("truncate", ["-s", String(48 * MIB), path]);
  const script = [
    "label: gpt",
    "",
    `start=1MiB, size=4MiB, type=${ESP_TYPE}, name="esp"`,
    `start=5MiB, size=32MiB, type=${options.rootType ?? ROOT_X86_64}, name="root-x86-64"`,
    "",
  ].join("\n");
  if (sectorSize === 512) sh("sfdisk", ["-q", path], script);
  else {
    const loop = sh("losetup", ["--find", "--show", `--sector-size=${sectorSize}`, path]).trim();
    try {
      sh("sfdisk", ["-q", "--no-reread", "--no-tell-kernel", loop], script);
    } finally {
      sh("losetup", ["--detach", loop]);
    }
  }
  const fs = `${path}.fs`;
  makeExt4(fs, 32 * MIB, ROOT_LABEL);
  sh("dd", [`if=${fs}`, `of=${path}`, "bs=1M", "seek=5", "conv=notrunc,sparse", "status=none"]);
  sh("rm", ["-f", fs]);
}

/** A sparse copy of an image. */
export function copyImage(from: string, to: string): void {
  sh("cp", ["--sparse=always", from, to]);
}

/** Flips a byte at `offset` of the file. */
export function corruptByte(path: string, offset: number): void {
  const fd = openSync(path, "r+");
  try {
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, offset);
    writeSync(fd, Buffer.from([byte[0]! ^ 0xff]), 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

/** Loop devices currently backed by `image`. */
export function loopsOf(image: string): string[] {
  return sh("losetup", ["--noheadings", "--output", "NAME", "--associated", image]).split("\n").map((l) => l.trim()).filter(Boolean);
}

/** Detaches every loop device backed by `image`. */
export function detachAll(image: string): void {
  for (const loop of loopsOf(image)) {
    try { sh("losetup", ["--detach", loop]); } catch { /* already gone */ }
  }
}
