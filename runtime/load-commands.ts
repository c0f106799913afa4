// Where the runtime's commands come from. Run from source (tests, development) they are the module
// itself; the build replaces this file with load-commands-sea.ts, which evaluates the commands bundle
// the single executable carries as an asset.
export type Commands = typeof import("./commands.ts");

export function loadCommands(): Promise<Commands> {
  return import("./commands.ts");
}
