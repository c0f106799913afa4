// load-commands.ts in the single executable (build.mjs puts this file in its place): the commands
// bundle is the executable's asset "commands.cjs", evaluated on first use. The entry point's own
// bundle, which the generator runs, stays small: its code cache is all V8 deserialises at start-up.
import { getAsset } from "node:sea";
import { dirname } from "node:path";
import { Script } from "node:vm";
import type { Commands } from "./load-commands.ts";

export type { Commands };

type CommonJsModule = (module: { exports: Commands }, exports: Commands, require: NodeJS.Require, filename: string, dirname: string) => void;

/** The bundle as a CommonJS module function; build.mjs compiles the very same text for the code cache. */
const wrap = (source: string): string => `(function (module, exports, require, __filename, __dirname) {${source}\n})`;

let loaded: Commands | undefined;

export async function loadCommands(): Promise<Commands> {
  if (loaded) return loaded;
  const module = { exports: {} as Commands };
  // A CommonJS bundle whose only requires are Node's built-in modules, which this require() serves;
  // compiled with the code cache build.mjs made for it with this very Node and these flags.
  const script = new Script(wrap(getAsset("commands.cjs", "utf8")), {
    filename: "netimport-commands.cjs",
    cachedData: new Uint8Array(getAsset("commands.cache")),
  });
  // openpgp's bundle reads __filename and __dirname: it gets the executable's.
  (script.runInThisContext() as CommonJsModule)(module, module.exports, require, process.execPath, dirname(process.execPath));
  loaded = module.exports;
  return loaded;
}
