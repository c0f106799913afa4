// Where the boot tests keep their inputs and their cached, git-ignored assets.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (…/work/main). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
/** test/e2e itself: the test overlay of the initrds. */
export const e2eDir = join(repoRoot, "test", "e2e");
/** The initrd integrations netimport ships: the dracut module and the mkosi example. */
export const integrationsDir = join(repoRoot, "integrations");
/** Cached assets, keyed by versions; everything here can be deleted and is rebuilt when missing. */
export const cacheDir = join(repoRoot, ".cache", "e2e");
/** The product's install tree, made by `npm run build` (NETIMPORT_E2E_TREE=DIR boots another build). */
export const distTree = process.env.NETIMPORT_E2E_TREE ?? join(repoRoot, "dist", "tree");
/** Debian mirror (the host's own sources point there); suites other than bookworm are passed explicitly. */
export const debianMirror = process.env.NETIMPORT_E2E_MIRROR ?? "http://deb.debian.org/debian";
/** How the guest reaches the host's 127.0.0.1 through QEMU's user network. */
export const hostFromGuest = "10.0.2.2";
