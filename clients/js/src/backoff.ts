//! When to reconnect: jittered exponential backoff, the server's `reconnect_after_ms`, and what
//! each close code means (protocol/README.md, "Close codes").

import { CLOSE } from "./wire.js";

export interface BackoffOptions {
  /** First retry delay ceiling, ms. */
  baseMs: number;
  /** Largest delay, ms. */
  maxMs: number;
  /** Uniform random source in [0, 1). */
  random: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 30_000, random: Math.random };

/**
 * The delay before attempt `attempt` (0-based): "equal jitter", uniformly in [cap/2, cap) with
 * cap = min(max, base * 2^attempt). Half the window is fixed so a crowd never retries at once
 * at zero delay; the other half spreads the crowd.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const cap = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  return cap / 2 + opts.random() * (cap / 2);
}

/**
 * A delay that honours the server's hint: never sooner than `hintMs`, with the client's own
 * jitter on top (up to a quarter of the hint) so clients told the same thing still spread.
 * Without a hint, `delayMs` unchanged.
 */
export function atLeastHint(delayMs: number, hintMs: number | undefined, random: () => number): number {
  if (hintMs === undefined || !(hintMs > 0)) return delayMs;
  return Math.max(delayMs, hintMs + random() * (hintMs / 4));
}

/**
 * The server's retry hint in a close reason: `{"retry_after_ms":N}` (protocol/README.md,
 * "Close codes"; sent with 4008 and 1013). Any other reason, human text included, has none.
 */
export function closeReasonHint(reason: string): number | undefined {
  if (!reason.startsWith("{")) return undefined;
  try {
    const parsed: unknown = JSON.parse(reason);
    const ms = (parsed as { retry_after_ms?: unknown } | null)?.retry_after_ms;
    return typeof ms === "number" && Number.isFinite(ms) && ms > 0 ? ms : undefined;
  } catch {
    return undefined;
  }
}

/** What to do after the socket closed. */
export type CloseVerdict =
  /** Do not reconnect: the token or the policy will refuse us again. */
  | { kind: "stop"; reason: string }
  /** Reconnect after the backoff, having raised the attempt count to at least `minAttempt`. */
  | { kind: "backoff"; minAttempt: number; reason: string };

/**
 * Classifies a close code. 1008 (no valid auth, or too many connections for this user) stops
 * reconnecting; 4008 (slow consumer) and overload-like codes back off harder; everything else
 * (1001 after `server.going_away`, 1006 for a node that vanished or refused the upgrade with
 * 503/429, 4000 missed heartbeats) reconnects with the normal backoff.
 */
export function classifyClose(code: number): CloseVerdict {
  switch (code) {
    case CLOSE.POLICY:
      return { kind: "stop", reason: "policy (1008): bad token or too many connections" };
    case CLOSE.SLOW_CONSUMER:
      return { kind: "backoff", minAttempt: 3, reason: "slow consumer (4008)" };
    case CLOSE.TRY_AGAIN_LATER:
    case 1011: // server error
    case 1012: // service restart
      return { kind: "backoff", minAttempt: 2, reason: `server overloaded or restarting (${code})` };
    case CLOSE.TOO_LARGE:
    case CLOSE.UNSUPPORTED:
      // Our own frame was refused; reconnecting is fine, the same frame will not be resent.
      return { kind: "backoff", minAttempt: 0, reason: `frame refused (${code})` };
    default:
      return { kind: "backoff", minAttempt: 0, reason: `closed (${code})` };
  }
}
