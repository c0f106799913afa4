// Two entries for one target path would overwrite each other's image: the first one named keeps the
// target, the later ones are refused. Looked up by path, so that checking every entry stays linear
// in the number of entries (16,000 entries took over 20 s when each was compared with all before).
import { localPath, type ImportRequest } from "./import-request.ts";

/** Claims a request's target: undefined when it was free, else the request that holds it. */
export type ClaimTarget = (request: ImportRequest) => ImportRequest | undefined;

/**
 * @example
 * const claim = targetClaims();
 * claim(a)      // undefined: /run/machines/a.raw is a's now
 * claim(alsoA)  // a
 */
export function targetClaims(): ClaimTarget {
  const byPath = new Map<string, ImportRequest>();
  return (request) => {
    const path = localPath(request);
    const holder = byPath.get(path);
    if (holder) return holder;
    byPath.set(path, request);
    return undefined;
  };
}
