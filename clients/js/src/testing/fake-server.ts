//! An in-process stand-in for a Corral node, for unit tests: sockets that the test drives by
//! hand (reply, push, close) and a default answer for `auth` and `time.sync`.

import { CorralClient, type ClientOptions } from "../client.js";
import type { CloseEventLike, MessageEventLike, WebSocketCtor, WebSocketLike } from "../socket.js";

/** A request as the fake server received it. */
export interface Req {
  id: number;
  op: string;
  [field: string]: unknown;
}

/** What the handler may return: an `ok` body, an error, or nothing (the test answers later). */
export type Answer = { ok: object } | { error: { code: string; message: string } } | undefined;

export class FakeSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((e: unknown) => void) | null = null;
  onclose: ((e: CloseEventLike) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  onmessage: ((e: MessageEventLike) => void) | null = null;
  readonly received: Req[] = [];

  constructor(
    private readonly server: FakeServer,
    readonly url: string,
    readonly protocols: string | string[] | undefined,
  ) {}

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("not open");
    const req = JSON.parse(data) as Req;
    this.received.push(req);
    this.server.requests.push(req);
    const answer = this.server.handle(req, this);
    if (answer) setTimeout(() => this.answer(req.id, answer), this.server.latencyMs);
  }

  close(code?: number): void {
    this.drop(code ?? 1000);
  }

  // --- the server side ---

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  answer(id: number, answer: NonNullable<Answer>): void {
    this.frame({ re: id, ...answer });
  }

  frame(value: object): void {
    if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(value) });
  }

  /** Closes from the server side with `code`. */
  drop(code: number, reason = ""): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code, reason }), 0);
  }
}

export class FakeServer {
  readonly sockets: FakeSocket[] = [];
  readonly requests: Req[] = [];
  /** Delay before answering, ms. */
  latencyMs = 0;
  /** When false, new sockets fail to open (closed with 1006, as a refused upgrade looks). */
  accepting = true;
  /** The server clock's offset from `Date.now()`, ms. */
  offsetMs = 0;
  tokens: string[] = [];
  /** Per-test answers; `undefined` falls back to the defaults below. */
  handler: (req: Req, socket: FakeSocket) => Answer | "default" = () => "default";

  readonly WebSocket: WebSocketCtor;

  constructor() {
    const server = this;
    this.WebSocket = class extends FakeSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(server, url, protocols);
        server.sockets.push(this);
        setTimeout(() => (server.accepting ? this.open() : this.drop(1006)), 0);
      }
    };
  }

  /** The socket the client uses now. */
  get last(): FakeSocket {
    const s = this.sockets[this.sockets.length - 1];
    if (!s) throw new Error("no socket yet");
    return s;
  }

  handle(req: Req, socket: FakeSocket): Answer {
    const custom = this.handler(req, socket);
    if (custom !== "default") return custom;
    switch (req.op) {
      case "auth":
        this.tokens.push(String(req.token));
        return { ok: { user_id: 1, role: "user", server_time: Date.now() + this.offsetMs } };
      case "time.sync":
        return { ok: { client_time: req.client_time as number, server_time: Date.now() + this.offsetMs } };
      default:
        return undefined;
    }
  }

  /** A client of this server with quick timers and strict frame decoding; `options` override. */
  client(options: Partial<ClientOptions> = {}): CorralClient {
    return new CorralClient({
      url: "ws://fake/ws",
      token: "t",
      WebSocket: this.WebSocket,
      backoff: { baseMs: 10, maxMs: 50 },
      clockSamples: 1,
      strictFrames: true,
      ...options,
    });
  }

  /** Requests of one op, in arrival order. */
  ops(op: string): Req[] {
    return this.requests.filter((r) => r.op === op);
  }
}

/** Resolves once `cond()` holds (polled), or rejects after `ms`. */
export async function until(cond: () => boolean, ms = 2000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
