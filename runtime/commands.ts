// The runtime's commands, bundled apart from the entry point: the single executable evaluates this
// bundle only when a runtime command runs (load-commands.ts), so the generator, on the boot's critical
// path, starts without deserialising the HTTP client, openpgp, the decoders or the DDI code.
export { runAttach } from "./attach-command.ts";
export { runLazy } from "./lazy-command.ts";
export { runPull } from "./pull-command.ts";
export { runVerity } from "./verity-command.ts";
export { runBootUrl } from "../generator/boot-url-command.ts";
