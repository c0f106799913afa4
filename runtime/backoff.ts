// Retry delays with capped exponential backoff and full jitter: a fleet that boots at once and hits
// the same failing server spreads its retries over the whole window instead of retrying in lockstep.

export interface BackoffPolicy {
  /** Delay ceiling of the first retry, in milliseconds. */
  baseMs: number;
  /** No delay ever exceeds this, in milliseconds. */
  capMs: number;
}

/**
 * The delay before retry number `attempt` (0 for the first retry): uniformly random in
 * [0, min(cap, base·2^attempt)).
 *
 * @example backoffDelay(3, { baseMs: 1000, capMs: 30000 }) // somewhere in [0, 8000)
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
