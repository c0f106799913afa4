// The command lines of the runtime's subcommands: Node's util.parseArgs in strict mode, with its errors
// turned into ours. parseArgs's messages speak of its own syntax ("Option '--type <value>' argument
// missing"), so an error is told by its code, and the argument at fault is found again among the tokens
// of a lenient parse of the same words (strict mode tokenizes alike and stops at the first bad one).
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { logText } from "../generator/log-line.ts";

/** A mistake on the command line: the command prints it with its usage and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** An option as given (name is the long name, also for `-h`), or a word that is not one. */
export type CommandLineToken =
  | { kind: "option"; name: string; value: string | undefined }
  | { kind: "positional"; value: string };

export interface CommandLineMessages {
  /** How the command names an option it does not know (`rawName` as typed: `--bogus`, `-x`). */
  unknownOption?: (rawName: string) => string;
}

/**
 * The options and positional arguments of `argv`, in their order (so that values are checked in the
 * order given and the last of `--ro`/`--rw` wins). Options take `--opt=value` or `--opt value`; `--`
 * ends them. A value that starts with "-" must be given as `--opt=-value`: `--keyring --ro` is refused
 * rather than reading "--ro" as the keyring.
 *
 * @example commandLine(["--type", "raw", "URL"], { type: { type: "string" } })
 *   // [{ kind: "option", name: "type", value: "raw" }, { kind: "positional", value: "URL" }]
 */
export function commandLine(argv: readonly string[], options: ParseArgsOptionsConfig, messages: CommandLineMessages = {}): CommandLineToken[] {
  let tokens;
  try {
    ({ tokens } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true, tokens: true }));
  } catch (error) {
    throw usageError(error, argv, options, messages);
  }
  return tokens.flatMap((token): CommandLineToken[] => {
    if (token.kind === "option") return [{ kind: "option", name: token.name, value: token.value }];
    if (token.kind === "positional") return [{ kind: "positional", value: token.value }];
    return []; // the "--" that ends the options
  });
}

/** With allowPositionals, parseArgs never raises ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL: each command counts its own. */
function usageError(error: unknown, argv: readonly string[], options: ParseArgsOptionsConfig, messages: CommandLineMessages): unknown {
  const code = (error as { code?: unknown } | undefined)?.code;
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    const config = Object.hasOwn(options, token.name) ? options[token.name] : undefined;
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      if (config === undefined) return new UsageError(messages.unknownOption?.(token.rawName) ?? `unknown option ${token.rawName}`);
    } else if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && config !== undefined) {
      if (config.type === "boolean" && token.value !== undefined) return new UsageError(`${token.rawName} takes no value`);
      if (config.type === "string" && token.value === undefined) return new UsageError(`${token.rawName} needs a value`);
      if (config.type === "string" && !token.inlineValue && token.value !== undefined && token.value.length > 1 && token.value.startsWith("-")) {
        return new UsageError(`${token.rawName} needs a value (to give "${token.value}", write ${token.rawName}=${token.value})`);
      }
    }
  }
  return error; // none of ours: parseArgs was given a wrong configuration
}

/**
 * Runs a subcommand that takes its arguments, does one thing and reports it: a usage error is one line
 * and the usage on stderr (exit 2), "help" prints the usage (exit 0), the lines `act` returns go to
 * stdout (exit 0), a failure is one line on stderr (exit 1). Every line with control characters escaped.
 *
 * @example return runSubcommand("attach", USAGE, argv, parseAttachArgs, async (args) => describeOutcome(await attachImage(…)));
 */
export async function runSubcommand<T>(name: string, usage: string, argv: readonly string[], parse: (argv: readonly string[]) => T | "help", act: (args: T) => Promise<string[]>): Promise<number> {
  let args: T | "help";
  try {
    args = parse(argv);
  } catch (error) {
    process.stderr.write(`netimport ${name}: ${logText((error as Error).message)}\n${usage}`);
    return 2;
  }
  if (args === "help") {
    process.stdout.write(usage);
    return 0;
  }
  try {
    for (const line of await act(args)) process.stdout.write(`${logText(line)}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`netimport ${name}: ${logText((error as Error).message)}\n`);
    return 1;
  }
}
