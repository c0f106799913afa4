// `netimport boot-url`: prints the UEFI HTTP boot URL and where it was found.
import { bootUrlFromEnv } from "./generator-inputs.ts";
import { logText } from "./log-line.ts";

export async function runBootUrl(argv: string[]): Promise<number> {
  if (argv.length > 0) {
    process.stderr.write("netimport: boot-url takes no arguments\n");
    return 2;
  }
  const boot = bootUrlFromEnv(process.env);
  if (!boot) {
    process.stderr.write("netimport: no boot URL: this machine was not booted via UEFI HTTP boot (no StubDeviceURL, LoaderDeviceURL or URI in the BootCurrent device path)\n");
    return 1;
  }
  // Shown like any other line the generator's code writes: no credentials, no control characters.
  process.stdout.write(`${logText(boot.url)}\t(from ${boot.source})\n`);
  return 0;
}
