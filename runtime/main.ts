// Entry point of the multi-call executable: the generator when invoked as `*-generator` or
// `netimport generator`, the runtime otherwise. The runtime's commands are loaded only when one runs
// (load-commands.ts; in the executable a bundle of their own), so the generator, which sits on the
// boot's critical path, never loads the HTTP client, openpgp or the decoders.
import { basename } from "node:path";
import { loadCommands } from "./load-commands.ts";

declare const NETIMPORT_VERSION: string;

const USAGE = `Usage:
  netimport-generator NORMAL_DIR [EARLY_DIR LATE_DIR]
  netimport generator NORMAL_DIR [EARLY_DIR LATE_DIR]
  netimport pull [--type=raw|tar] [--verify=no|checksum|signature|sha256:HEX] [--keyring=FILE]
                 [--mirror=URL]... [--ca-file=FILE] [--idle-timeout=SEC] [--retries=N] [--retry-delay=SEC]
                 [--proxy=URL] [--http-proxy=URL] [--https-proxy=URL] [--no-proxy=HOSTS]
                 [--secrets-from=FILE]... [--image-memory-max=SIZE|PERCENT%] [--progress-interval=SEC] [--ro]
                 URL DEST
  netimport lazy [PULL OPTIONS] --device-link=PATH --pid-file=PATH [--outage-limit=SEC] URL DEST
  netimport attach IMAGE [--partition=root|usr|whole|N] [--link=PATH] [--usr-link=PATH] [--tmpfs-root=PATH]
                   [--roothash=HEX] [--usrhash=HEX] [--rw|--ro] [--mapper-prefix=NAME] [--require-verity]
  netimport verity NAME --data=PATH --hash=PATH [--roothash=HEX] [--signature=FILE] --link=PATH
                   [--certificates-dir=DIR]...
  netimport boot-url
  netimport --help | --version
`;

function version(): string {
  return typeof NETIMPORT_VERSION === "string" ? NETIMPORT_VERSION : "development";
}

/** The name we were invoked under (argv[0] as the caller passed it, not the resolved executable). */
function invokedAs(): string {
  return basename(process.argv0);
}

async function main(argv: string[]): Promise<number> {
  if (invokedAs().endsWith("-generator")) {
    const { runGenerator } = await import("../generator/main.ts");
    return runGenerator(argv);
  }
  const [command, ...rest] = argv;
  switch (command) {
    case "generator": {
      const { runGenerator } = await import("../generator/main.ts");
      return runGenerator(rest);
    }
    case "pull": {
      return (await loadCommands()).runPull(rest);
    }
    case "attach": {
      return (await loadCommands()).runAttach(rest);
    }
    case "lazy": {
      return (await loadCommands()).runLazy(rest);
    }
    case "verity": {
      return (await loadCommands()).runVerity(rest);
    }
    case "boot-url": {
      return (await loadCommands()).runBootUrl(rest);
    }
    case "--version":
      process.stdout.write(`netimport ${version()}\n`);
      return 0;
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(command === undefined ? USAGE : `netimport: unknown command '${command}'\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (error: unknown) => {
    process.stderr.write(`netimport: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
