/**
 * Exponential backoff with jitter, as client-go's rate limiters and reflectors
 * back off: attempt n waits base * 2^n, capped, plus a random fraction, so
 * failing keys and watches do not retry in lockstep. The one formula the work
 * queue and the informers share.
 */

export interface BackoffOptions {
  baseDelayMs: number;
  maxDelayMs: number;
  /** Fraction of the delay added at random. */
  jitter: number;
}

/** The delay before retry number `attempt` (0 for the first retry). `random` in [0, 1). */
export function backoffDelay(options: BackoffOptions, attempt: number, random: () => number = Math.random): number {
  const exponential = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.min(attempt, 30));
  return exponential + exponential * options.jitter * random();
}
