// Parses one `OPTIONS:LOCAL:REMOTE` expression, as systemd-import-generator's parse_pull_expression()
// does, plus netimport's own options. Pure: the boot URL is passed in, nothing is read here.
import {
  IMAGE_CLASSES,
  type ImageClass,
  type ImageType,
  type ImportRequest,
  type RequestOrigin,
  type Verify,
} from "./import-request.ts";
import {
  inferImageType,
  isFileUrl,
  isHttpUrl,
  isValidImageName,
  rawStripSuffixes,
  tarStripSuffixes,
  urlChangeSuffix,
  urlLastComponent,
} from "./url.ts";
import type { BootUrl } from "./efi-boot-url.ts";
import { urlUserinfo } from "./redact.ts";
import { CREDENTIALS_OUTSIDE_USERINFO_RULE, hasCredentialsOutsideUserinfo } from "./url-credentials.ts";

/**
 * `import`: netimport's grammar (`rd.systemd.import=`, the credential, config files): the type is
 * inferred from the URL when absent, the class defaults to `machine`, `root` and `verify=sha256:`
 * are understood. `pull`: systemd's `rd.systemd.pull=` exactly: type and class are mandatory.
 */
export type Dialect = "import" | "pull";

export interface ParseContext {
  dialect: Dialect;
  origin: RequestOrigin;
  inInitrd: boolean;
  /** Looked up only when the expression uses `bootorigin`. */
  bootUrl: () => BootUrl | undefined;
}

export type ParseResult =
  | { kind: "request"; request: ImportRequest; notes: string[]; warnings: string[] }
  | { kind: "skipped"; reason: string; warnings: string[] }
  | { kind: "rejected"; error: string; warnings: string[] };

const TYPES: readonly ImageType[] = ["raw", "tar"];
const VERIFY_MODES = ["no", "checksum", "signature"];

/** systemd's parse_boolean(). */
export function parseBoolean(text: string): boolean | undefined {
  const t = text.toLowerCase();
  if (["1", "yes", "y", "true", "t", "on"].includes(t)) return true;
  if (["0", "no", "n", "false", "f", "off"].includes(t)) return false;
  return undefined;
}

/**
 * Where the options field ends: at the first colon, except the one inside `verify=sha256:<hex>`,
 * so that pinned hashes need no quoting (netimport's dialect only: systemd splits at every colon).
 */
function optionsEnd(expression: string): number {
  let colon = expression.indexOf(":");
  while (colon >= 0 && /(^|,)verify=sha256$/.test(expression.slice(0, colon))) colon = expression.indexOf(":", colon + 1);
  return colon;
}

/**
 * @example parsePullExpression("raw,root,verify=no::http://h/root.raw.zst", ctx)
 *   // { kind: "request", request: { type: "raw", class: "machine", local: "root", … } }
 */
export function parsePullExpression(expression: string, ctx: ParseContext): ParseResult {
  const warnings: string[] = [];
  const notes: string[] = [];
  const reject = (error: string): ParseResult => ({ kind: "rejected", error, warnings });

  const first = ctx.dialect === "import" ? optionsEnd(expression) : expression.indexOf(":");
  const second = first < 0 ? -1 : expression.indexOf(":", first + 1);
  if (second < 0) return reject(`expected OPTIONS:LOCAL:URL (three fields separated by ':') in '${expression}'`);
  const options = expression.slice(0, first);
  let local = expression.slice(first + 1, second);
  let remote = expression.slice(second + 1);

  if (local !== "" && !isValidImageName(local)) {
    return reject(`'${local}' is not a valid image name (a file name: no '/', not '.' or '..', no control characters, not starting with '.#')`);
  }

  let type: ImageType | undefined;
  let imageClass: ImageClass | undefined;
  let verify: Verify = "signature";
  let readOnly = false;
  let blockdev = false;
  let bootorigin = false;
  let root = false;
  let lazy: boolean | undefined;
  let runtime = ctx.inInitrd;

  for (const opt of options.split(",")) {
    if (opt === "") continue;
    if (opt === "ro") readOnly = true;
    else if (opt === "rw") readOnly = false;
    else if (opt === "blockdev") blockdev = true;
    else if (opt === "bootorigin") bootorigin = true;
    else if (opt === "root" && ctx.dialect === "import") root = true;
    else if (opt === "lazy" && ctx.dialect === "import") lazy = true;
    else if (opt.startsWith("lazy=") && ctx.dialect === "import") {
      const value = parseBoolean(opt.slice(5));
      if (value === undefined) warnings.push(`Unknown lazy= value, ignoring: ${opt.slice(5)}`);
      else lazy = value;
    }
    else if (opt.startsWith("runtime=")) {
      const value = parseBoolean(opt.slice(8));
      if (value === undefined) warnings.push(`Unknown runtime= value, ignoring: ${opt.slice(8)}`);
      else runtime = value;
    } else if (opt.startsWith("verify=")) {
      const mode = opt.slice(7);
      if (VERIFY_MODES.includes(mode)) verify = mode as Verify;
      else if (ctx.dialect === "import" && mode.startsWith("sha256:")) {
        const hex = mode.slice(7);
        if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
          return reject(`verify=sha256: needs exactly 64 hexadecimal digits, got '${hex}'`);
        }
        verify = `sha256:${hex.toLowerCase()}`;
      } else warnings.push(`Unknown verification mode, ignoring: ${mode}`);
    } else if ((IMAGE_CLASSES as readonly string[]).includes(opt)) imageClass = opt as ImageClass;
    else if ((TYPES as readonly string[]).includes(opt)) type = opt as ImageType;
    else warnings.push(`Unknown pull option, ignoring: ${opt}`);
  }

  if (bootorigin) {
    const boot = ctx.bootUrl();
    if (!boot) {
      return {
        kind: "skipped",
        reason: `Option 'bootorigin' given, but this machine was not booted via UEFI HTTP boot, not scheduling download of '${remote}'.`,
        warnings,
      };
    }
    if (!isHttpUrl(boot.url)) return reject(`Value of ${boot.source} is not a valid HTTP URL, refusing: ${boot.url}`);
    // The runtime reads credentials back from a file named in the unit (--secrets-from=); a firmware
    // variable is not such a file, and writing them into the unit is what must never happen.
    if (urlUserinfo(boot.url) !== undefined) {
      return reject(`The URL in ${boot.source} carries a user name or password, which netimport cannot pass on without writing it into a unit, refusing: ${boot.url}`);
    }
    try {
      remote = urlChangeSuffix(boot.url, 1, remote);
    } catch (error) {
      return reject(`Failed to replace the last component of ${boot.source} URL '${boot.url}': ${(error as Error).message}`);
    }
    notes.push(`URL reported by ${boot.source} is '${boot.url}', derived download URL '${remote}' from it.`);
  }

  if (!isHttpUrl(remote) && !isFileUrl(remote)) {
    return reject(`Not a valid URL (http://, https:// or file:/ and ASCII only), refusing: ${remote}`);
  }
  if (hasCredentialsOutsideUserinfo(remote)) return reject(`The URL ${CREDENTIALS_OUTSIDE_USERINFO_RULE}, refusing: ${remote}`);

  if (!type) {
    if (ctx.dialect === "pull") return reject(`No image type (raw, tar) specified in pull expression, refusing: ${expression}`);
    type = inferImageType(remote);
  }
  if (!imageClass) {
    if (ctx.dialect === "pull") {
      return reject(`No image class (machine, portable, sysext, confext) specified in pull expression, refusing: ${expression}`);
    }
    imageClass = "machine";
  }
  if (root && imageClass !== "machine") return reject(`Option 'root' needs the image class 'machine', not '${imageClass}': ${expression}`);

  if (local === "") {
    try {
      const component = urlLastComponent(remote);
      local = type === "raw" ? rawStripSuffixes(component) : tarStripSuffixes(component);
    } catch (error) {
      return reject(`Failed to derive a local name from URL '${remote}': ${(error as Error).message}`);
    }
    if (!isValidImageName(local)) return reject(`Local name '${local}' derived from URL '${remote}' is not a valid image name`);
    notes.push(`Saving downloaded file under local name '${local}'.`);
  }

  if (blockdev && type !== "raw") return reject(`Option 'blockdev' only available for raw images, refusing: ${expression}`);

  const request: ImportRequest = {
    origin: ctx.origin,
    class: imageClass,
    type,
    local,
    remote,
    readOnly,
    verify,
    blockdev,
    runtime,
    ...(lazy === undefined ? {} : { lazy }),
  };
  if (root) request.root = type === "raw" ? { kind: "attach", partition: "root" } : { kind: "bind" };
  return { kind: "request", request, notes, warnings };
}
