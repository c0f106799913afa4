// Discoverable Disk Images built on the host as systemd-repart builds them: file systems made with
// mkfs.erofs, mksquashfs or mkfs.ext4, hash trees with `veritysetup format`, root hash signatures with
// `openssl smime`/`openssl cms`, the JSON in the -verity-sig partition, and partition UUIDs derived from
// the root hash, all put into a GPT with sfdisk. The type GUIDs are copied here from systemd's sd-gpt.h
// on purpose, not imported from runtime/gpt.ts, so that a wrong GUID there fails a test.
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { MIB } from "./disk-fixtures.ts";

export const X64 = {
  root: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
  rootVerity: "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
  rootVeritySig: "41092b05-9fc8-4523-994f-2def0408b176",
  usr: "8484680c-9521-48c6-9c11-b0720656f69e",
  usrVerity: "77ff5f63-e7b6-4633-acf4-1565b864c0e6",
  usrVeritySig: "e7bb33fb-06cf-4e81-8273-e543b413e2e2",
  esp: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
} as const;

const sh = (command: string, args: string[], input?: string | Buffer) =>
  execFileSync(command, args, { encoding: "utf8", stdio: ["pipe", "pipe", "pipe"], ...(input === undefined ? {} : { input }) });

/** A folder with `files` (name → contents) plus `noise` bytes of random data, for a file system. */
export function makeTree(dir: string, files: Record<string, string | Buffer>, noise = 256 * 1024): string {
  mkdirSync(dir, { recursive: true });
  for (const [name, contents] of Object.entries(files)) writeFileSync(join(dir, name), contents);
  if (noise) writeFileSync(join(dir, "noise.bin"), randomBytes(noise));
  return dir;
}

export type FsKind = "erofs" | "squashfs" | "ext4";

/** A file system image of `tree`, of the given kind. */
export function makeFs(path: string, tree: string, kind: FsKind): string {
  rmSync(path, { force: true });
  if (kind === "erofs") sh("mkfs.erofs", ["--quiet", "--all-root", path, tree]);
  else if (kind === "squashfs") sh("mksquashfs", [tree, path, "-quiet", "-noappend", "-all-root", "-no-progress"]);
  else {
    sh("truncate", ["-s", String(4 * MIB), path]);
    sh("mkfs.ext4", ["-q", "-F", "-b", "4096", "-O", "^has_journal", "-d", tree, path]);
  }
  return path;
}

/** `veritysetup format DATA HASH`: the hash tree (with superblock) in HASH; returns the root hash. */
export function formatVerity(data: string, hash: string, extra: string[] = []): string {
  rmSync(hash, { force: true });
  const out = sh("veritysetup", ["format", ...extra, data, hash]);
  const match = /^Root hash:\s*([0-9a-f]+)$/m.exec(out);
  if (!match) throw new Error(`veritysetup printed no root hash:\n${out}`);
  return match[1]!;
}

/** The partition UUIDs systemd-repart derives from a root hash: data = first 128 bits, verity = last. */
export function uuidsOf(rootHash: string): { data: string; verity: string } {
  const uuid = (h: string) => `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
  return { data: uuid(rootHash.slice(0, 32)), verity: uuid(rootHash.slice(-32)) };
}

export interface Signer {
  key: string;
  cert: string;
  /** The certificate's DER SHA-256, as certificateFingerprint holds it. */
  fingerprint: string;
  subject: string;
}

/** A self-signed signing certificate and its key (RSA 2048 or ECDSA P-256). */
export function makeSigner(dir: string, name: string, kind: "rsa" | "ec" = "rsa"): Signer {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  const newkey = kind === "rsa" ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
  sh("openssl", ["req", "-x509", ...newkey, "-nodes", "-keyout", key, "-out", cert, "-subj", `/CN=${name}/O=netimport tests`, "-days", "2"]);
  const der = Buffer.from(sh("openssl", ["x509", "-in", cert, "-outform", "PEM"]).replace(/-----[^-]+-----|\s/g, ""), "base64");
  return { key, cert, fingerprint: createHash("sha256").update(der).digest("hex"), subject: `CN=${name}, O=netimport tests` };
}

export interface SignOptions {
  /** Sign with openssl cms and its default signed attributes (contentType, signingTime, messageDigest, …). */
  attributes?: boolean;
  /** Name the signer by subject key identifier instead of issuer and serial number. */
  keyId?: boolean;
  /** Include the signer's certificate (as systemd-repart's PKCS7_sign does). */
  certs?: boolean;
  digest?: string;
  /** Embed the content instead of a detached signature. */
  attached?: boolean;
  /** Extra `openssl cms` arguments (e.g. RSA-PSS key options). */
  extra?: string[];
}

/** A DER PKCS#7 signature over `text` (the root hash in lower-case hex), made by openssl. */
export function sign(signer: Signer, text: string, options: SignOptions = {}): Buffer {
  const useCms = options.attributes || options.keyId || options.extra;
  const args = useCms ? ["cms", "-sign"] : ["smime", "-sign"];
  args.push("-binary", "-signer", signer.cert, "-inkey", signer.key, "-outform", "DER");
  if (!options.attributes) args.push("-noattr");
  if (!options.certs) args.push("-nocerts");
  if (options.keyId) args.push("-keyid");
  if (options.attached) args.push("-nodetach");
  if (options.digest) args.push("-md", options.digest);
  if (options.extra) args.push(...options.extra);
  return execFileSync("openssl", args, { input: text, stdio: ["pipe", "pipe", "pipe"] });
}

/** The -verity-sig partition's JSON, as systemd-repart writes it. */
export function signatureJson(rootHash: string, signer: Signer, signature: Buffer): string {
  return JSON.stringify({ rootHash, certificateFingerprint: signer.fingerprint, signature: signature.toString("base64") });
}

export interface PartSpec {
  type: string;
  name: string;
  /** Contents: a file to copy in, or bytes. */
  contents?: string | Buffer;
  /** Partition size in MiB (default: the contents rounded up, at least 1). */
  mib?: number;
  uuid?: string;
  /** GPT attribute bits to set (e.g. [60] read-only, [63] no-auto). */
  attrs?: number[];
}

export interface BuiltPart extends PartSpec {
  number: number;
  offset: number;
  size: number;
}

/** A GPT image holding `parts` in order from 1 MiB, each in whole MiB; returns where each one landed. */
export function makeDdi(path: string, parts: PartSpec[]): BuiltPart[] {
  const built: BuiltPart[] = [];
  let start = 1;
  for (const [i, part] of parts.entries()) {
    const length = part.contents === undefined ? 0 : typeof part.contents === "string" ? statSync(part.contents).size : part.contents.length;
    const mib = part.mib ?? Math.max(1, Math.ceil(length / MIB));
    built.push({ ...part, number: i + 1, offset: start * MIB, size: mib * MIB });
    start += mib;
  }
  rmSync(path, { force: true });
  sh("truncate", ["-s", String((start + 1) * MIB), path]);
  const lines = built.map((p) => [
    `start=${p.offset / 512}`, `size=${p.size / 512}`, `type=${p.type}`, `name="${p.name}"`,
    ...(p.uuid ? [`uuid=${p.uuid}`] : []), ...(p.attrs?.length ? [`attrs="${p.attrs.map((b) => `GUID:${b}`).join(" ")}"`] : []),
  ].join(", "));
  sh("sfdisk", ["-q", path], ["label: gpt", "", ...lines, ""].join("\n"));
  const fd = openSync(path, "r+");
  try {
    for (const p of built) {
      if (p.contents === undefined) continue;
      const bytes = typeof p.contents === "string" ? readFileSync(p.contents) : p.contents;
      writeSync(fd, bytes, 0, bytes.length, p.offset);
    }
  } finally {
    closeSync(fd);
  }
  return built;
}

/** JSON padded with NULs to a whole number of 4 KiB, as the -verity-sig partition holds it. */
export function padded(json: string, size = 16 * 1024): Buffer {
  const bytes = Buffer.alloc(size);
  bytes.write(json, "utf8");
  return bytes;
}

export interface VerityDdiParts {
  data: string;
  hash: string;
  rootHash: string;
  signature?: Buffer;
  json?: string;
}

/**
 * A file system with its hash tree and (with `signer`) its signed JSON, in `dir` under `name`; `kind`
 * picks the file system. The pieces are put into images with makeDdi.
 */
export function makeVerityParts(dir: string, name: string, files: Record<string, string | Buffer>, options: { kind?: FsKind; signer?: Signer; sign?: SignOptions; noise?: number } = {}): VerityDdiParts {
  const tree = makeTree(join(dir, `${name}.tree`), files, options.noise);
  const data = makeFs(join(dir, `${name}.${options.kind ?? "erofs"}`), tree, options.kind ?? "erofs");
  const hash = join(dir, `${name}.verity`);
  const rootHash = formatVerity(data, hash);
  if (!options.signer) return { data, hash, rootHash };
  const signature = sign(options.signer, rootHash, options.sign);
  return { data, hash, rootHash, signature, json: signatureJson(rootHash, options.signer, signature) };
}

/** The DDI partitions for one verity-protected file system: data, verity and (if signed) verity-sig. */
export function verityPartSpecs(kind: "root" | "usr", parts: VerityDdiParts, label = `${kind}-x86-64`): PartSpec[] {
  const uuids = uuidsOf(parts.rootHash);
  const types = kind === "root" ? [X64.root, X64.rootVerity, X64.rootVeritySig] : [X64.usr, X64.usrVerity, X64.usrVeritySig];
  return [
    { type: types[0]!, name: label, contents: parts.data, uuid: uuids.data },
    { type: types[1]!, name: `${label}-verity`, contents: parts.hash, uuid: uuids.verity },
    ...(parts.json ? [{ type: types[2]!, name: `${label}-verity-sig`, contents: padded(parts.json) }] : []),
  ];
}
