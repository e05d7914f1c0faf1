//! One socket's life: the requests in flight on it, matched to their replies by id, and what
//! the reconnect policy needs to know about it (a `server.going_away` delay, when it was
//! authenticated, when it was last heard from).

import { CorralError } from "./errors.js";
import type { ReplyFrame } from "./frames.js";
import type { DecodeMode } from "./schema.js";
import type { WebSocketLike } from "./socket.js";
import { OPS, type OpName, type ParamsOf, type ReplyOf } from "./wire.js";

interface Pending {
  op: OpName;
  resolve(value: unknown): void;
  reject(err: CorralError): void;
  timer: ReturnType<typeof setTimeout>;
}

export class Session {
  /** The delay a `server.going_away` push asked for, if one came. */
  goingAwayMs: number | null = null;
  /** When `auth` succeeded on this socket. */
  authedAt: number | null = null;
  /** When the last frame arrived. */
  lastHeard = Date.now();

  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  constructor(
    readonly ws: WebSocketLike,
    private readonly mode: DecodeMode,
  ) {}

  /** Sends one request; resolves with its decoded `ok`, rejects with its error or a timeout. */
  send<K extends OpName>(op: K, params: ParamsOf<K>, timeoutMs: number): Promise<ReplyOf<K>> {
    return new Promise<ReplyOf<K>>((resolve, reject) => {
      const id = this.#nextId++;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new CorralError("timeout", `no \`${op}\` reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { op, resolve: resolve as (v: unknown) => void, reject, timer });
      try {
        this.ws.send(JSON.stringify({ id, op, ...params }));
      } catch (cause) {
        this.#pending.delete(id);
        clearTimeout(timer);
        reject(new CorralError("disconnected", `cannot send \`${op}\`: ${String(cause)}`, undefined, { cause }));
      }
    });
  }

  /**
   * Settles the request `frame` answers (a reply to a request that already timed out is
   * ignored). Returns the protocol error to report when the `ok` does not fit the op's type.
   */
  settle(frame: ReplyFrame & { re: number }): CorralError | null {
    const pending = this.#pending.get(frame.re);
    if (!pending) return null;
    this.#pending.delete(frame.re);
    clearTimeout(pending.timer);
    if (frame.error) {
      pending.reject(
        new CorralError(frame.error.code, frame.error.message, undefined, { retryAfterMs: frame.error.retry_after_ms }),
      );
      return null;
    }
    try {
      pending.resolve(OPS[pending.op].ok.parse(frame.ok, "ok", this.mode));
      return null;
    } catch (cause) {
      const err = new CorralError("protocol", `bad \`${pending.op}\` reply: ${String(cause)}`, undefined, { cause });
      pending.reject(err);
      return err;
    }
  }

  /** Rejects every request in flight with `err(op)`. */
  failAll(err: (op: OpName) => CorralError): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(err(p.op));
    }
    this.#pending.clear();
  }

  /** Stops listening to the socket and closes it (its close event is no longer awaited). */
  detach(code: number, reason: string): void {
    this.ws.onclose = null;
    this.ws.onmessage = null;
    try {
      this.ws.close(code, reason.slice(0, 120));
    } catch {
      // already closing
    }
  }
}
