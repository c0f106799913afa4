// What every rendered unit shares: where it came from, how its command line is written, and how a
// failure of the root file system's units ends the boot.
import { localPath, type ImportRequest } from "./import-request.ts";
import { redactUrl } from "./redact.ts";
import { escapeSpecifiers, quoteExecArgument } from "./unit-text.ts";

/** A root file system that cannot be made leaves nothing to boot: the emergency shell says why. */
export const EMERGENCY = ["OnFailure=emergency.target", "OnFailureJobMode=replace-irreversibly"];

export function execLine(args: string[]): string {
  return args.map(quoteExecArgument).join(" ");
}

/** The template values every unit of a request uses. */
export function common(request: ImportRequest) {
  return {
    ORIGIN: `${request.origin.what} in ${request.origin.path}`,
    // SourcePath= expands specifiers: a drop-in named 50-%n.conf must stay itself.
    SOURCE_PATH: escapeSpecifiers(request.origin.path),
    CLASS: request.class,
    LOCAL: escapeSpecifiers(request.local),
    REMOTE: escapeSpecifiers(redactUrl(request.remote)),
    DEST: escapeSpecifiers(localPath(request)),
  };
}
