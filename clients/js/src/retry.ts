//! Retrying an idempotent request (same key every time) until it succeeds, fails for good, or
//! its deadline passes.

import { atLeastHint, backoffDelay, type BackoffOptions } from "./backoff.js";
import { CorralError } from "./errors.js";

/** Resolves after `ms`, or as soon as `signal` aborts (its timer is cleared then). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done);
  });
}

/**
 * The wait before retry `attempt` (0-based) after `err`: jittered backoff, and never sooner
 * than the server's `retry_after_ms` when the error carries one.
 */
export function retryDelay(attempt: number, err: CorralError, backoff: BackoffOptions): number {
  return atLeastHint(backoffDelay(attempt, backoff), err.retryAfterMs, backoff.random);
}

export interface RetryPolicy {
  /** Give up (rethrowing the last error) once this much time has passed since the first try, ms. */
  deadlineMs: number;
  backoff: BackoffOptions;
  /** Whether the caller stopped caring (e.g. the client was closed). */
  cancelled(): boolean;
}

/**
 * Runs `attempt` until it resolves. Retries errors that are `retryable` (`unavailable`,
 * `internal`, `rate_limited`, a timeout, a dropped socket) with jittered backoff, never sooner
 * than the server's `retry_after_ms` when the error carries one; the caller's
 * `attempt` must reuse one idempotency key so that a retry of a request the server did act on
 * returns the original result instead of acting twice.
 */
export async function retryIdempotent<T>(attempt: () => Promise<T>, policy: RetryPolicy): Promise<T> {
  const start = Date.now();
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      const retry =
        err instanceof CorralError &&
        err.retryable &&
        !policy.cancelled() &&
        Date.now() - start < policy.deadlineMs;
      if (!retry) throw err;
      // A dropped socket is retried when the client is back; waiting for it is `request`'s job.
      // A server that said how long to wait (`retry_after_ms`) is not asked again sooner.
      if (err.code !== "disconnected") {
        await sleep(retryDelay(n, err, policy.backoff));
      }
    }
  }
}
