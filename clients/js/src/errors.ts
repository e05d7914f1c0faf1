//! The one error type the SDK rejects with: a server error code, or a client-side one.

import type { ErrorCode } from "./wire.js";

/** Failures detected by the client itself rather than answered by a server. */
export type ClientErrorCode =
  /** No reply within the request timeout (the server may still have acted: retry with the same key). */
  | "timeout"
  /** The socket closed before the reply arrived. */
  | "disconnected"
  /** `close()` was called, or the client stopped reconnecting (bad token, 1008). */
  | "closed"
  /** A frame did not match the protocol's types. */
  | "protocol"
  /** An HTTP request failed below HTTP (network down, bad URL). */
  | "network";

/** A server error (`code` from protocol/README.md's table) or a client-side failure. */
export class CorralError extends Error {
  constructor(
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    /** The HTTP status, for errors of `CorralApi`. */
    readonly status?: number,
    options?: { cause?: unknown; retryAfterMs?: number },
  ) {
    super(message, options);
    this.name = "CorralError";
    this.retryAfterMs = options?.retryAfterMs;
  }

  /** The server's hint (`retry_after_ms`): a retry waits at least this long, ms. */
  readonly retryAfterMs: number | undefined;

  /** Whether retrying the same request (with the same idempotency key) may succeed. */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}

const RETRYABLE = new Set<string>(["unavailable", "internal", "rate_limited", "timeout", "disconnected"]);
