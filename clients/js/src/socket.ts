//! The slice of the WebSocket API the SDK uses: the browser's global `WebSocket` and Node's
//! `ws` package both fit it, so either can be injected.

/** Handler slots are declared bivariantly so both DOM and `ws` event types fit. */
type Handler<E> = { bivarianceHack(event: E): void }["bivarianceHack"];

export interface CloseEventLike {
  readonly code: number;
  readonly reason: string;
}

export interface MessageEventLike {
  readonly data: unknown;
}

/** A WebSocket instance. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: Handler<unknown> | null;
  onclose: Handler<CloseEventLike> | null;
  onerror: Handler<unknown> | null;
  onmessage: Handler<MessageEventLike> | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: `globalThis.WebSocket` in browsers, `WebSocket` from `ws` in Node. */
export type WebSocketCtor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** `WebSocket.OPEN`. */
export const OPEN = 1;
