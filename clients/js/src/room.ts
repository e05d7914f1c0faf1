//! A joined chat room: delivers every message once and in `seq` order, across reconnects.
//!
//! Everything that changes the room (the join reply, pushes, gap repair) runs through one
//! promise chain, so a re-join's `missed` is applied before the pushes that follow it and a
//! message whose `seq` is already held is dropped wherever it came from.
//!
//! A re-join is not given up while the room is held: a node pacing its joins under load answers
//! `unavailable` with a `retry_after_ms` that grows with the crowd waiting, and a crowd of
//! thousands can wait longer than any fixed deadline. Past `retryDeadlineMs` the app is told
//! once (`onError`, with a retryable error) and the room keeps re-joining.

import type { BackoffOptions } from "./backoff.js";
import { CorralError } from "./errors.js";
import { retryDelay, sleep } from "./retry.js";
import type { ChatMessage, OpName, ParamsOf, PushOf, ReplyOf, RoomJoinOk, RoomSendOk } from "./wire.js";

export interface RoomHandlers {
  /** A new message, in `seq` order, each `seq` once (live pushes, catch-up after a reconnect, gap repair). */
  onMessage?(message: ChatMessage): void;
  /** A user came (`joined`) or went (`left`). */
  onPresence?(presence: PushOf<"presence">): void;
  /** The room's history was reset on the server (a new `epoch`): drop what was shown. */
  onReset?(): void;
  /**
   * The room could not be re-joined after a reconnect. A final refusal (`forbidden`: removed
   * from a private room, `not_found`, `limit_reached`) ends the room (`joined` false). A
   * retryable error (`unavailable`, …) means the re-join has been failing for longer than
   * `retryDeadlineMs` and goes on (`rejoining` stays true): told once per re-join, not on
   * every attempt.
   */
  onError?(error: CorralError): void;
  /** On the first join, load this many of the newest messages into `messages` (default 0). */
  initialHistory?: number;
  /** Most messages kept in `messages` (oldest dropped first; `lastSeq` is unaffected). Default 1,000. */
  keep?: number;
}

/** What a room needs from its client. */
export interface RoomHost {
  request<K extends OpName>(op: K, params: ParamsOf<K>): Promise<ReplyOf<K>>;
  retrying<K extends OpName>(op: K, params: ParamsOf<K>): Promise<ReplyOf<K>>;
  /** How a re-join retries: its backoff, and after how long failing the app is told. */
  readonly rejoinPolicy: { deadlineMs: number; backoff: BackoffOptions };
  /** Whether the client is authenticated on an open socket (a re-join retries only then). */
  connected(): boolean;
  emit(message: ChatMessage): void;
  forget(room: Room): void;
  newKey(): string;
}

/** Largest `room.history` page the protocol serves by default. */
const PAGE = 200;

export class Room {
  /** Messages received since the join (and `initialHistory`), oldest first. */
  readonly messages: ChatMessage[] = [];
  /** The highest `seq` held: every message up to it has been delivered (or predates the first join). */
  lastSeq = 0;
  /** The room's history epoch from the last join reply. */
  epoch: number | null = null;
  /** Users online in the room on the node (from the join reply, then presence pushes). */
  online: number[] = [];
  onlineCount = 0;
  /** Whether the room is joined (false after `leave()` or a failed re-join). */
  joined = false;
  /** Whether a re-join after a reconnect is under way: no messages arrive until it succeeds. */
  rejoining = false;

  #chain: Promise<void> = Promise.resolve();
  #everJoined = false;
  /** The re-join running for the current session, aborted by the next one, `leave()` or `close()`. */
  #rejoinRun: AbortController | null = null;
  /** When the re-join under way started (it spans the sessions it takes), epoch ms. */
  #rejoinSince: number | null = null;
  /** Whether the app was told that this re-join outlived the retry deadline. */
  #rejoinOverdueTold = false;

  constructor(
    readonly id: number,
    private readonly handlers: RoomHandlers,
    private readonly host: RoomHost,
  ) {}

  /** First join; resolves once the reply (and `initialHistory`) is applied. */
  join(): Promise<void> {
    return this.#enqueue(async () => {
      const reply = await this.host.retrying("room.join", { room: this.id });
      this.#everJoined = true;
      this.joined = true;
      this.#adopt(reply);
      this.lastSeq = reply.last_seq;
      const n = Math.min(this.handlers.initialHistory ?? 0, this.lastSeq);
      if (n > 0) this.#keep(await this.#page(this.lastSeq + 1, this.lastSeq - n + 1));
    }, true);
  }

  /**
   * After a reconnect: join again with `since` = the last seq held, then deliver what was
   * missed. Retried with backoff (never sooner than the server's `retry_after_ms`) for as long
   * as the client is connected and the room held; a dropped socket hands over to the next
   * session's re-join; a final refusal ends the room.
   */
  rejoin(): void {
    if (!this.#everJoined || !this.joined) return;
    // The previous session's re-join, if still waiting, gives way to this one.
    this.#rejoinRun?.abort();
    const run = new AbortController();
    this.#rejoinRun = run;
    this.#rejoinSince ??= Date.now();
    this.rejoining = true;
    void this.#enqueue(async () => {
      const reply = await this.#rejoinReply(run.signal);
      if (reply === null) return;
      this.#endRejoin();
      const reset = (this.epoch !== null && reply.epoch !== this.epoch) || this.lastSeq > reply.last_seq;
      this.#adopt(reply);
      if (reset) {
        this.messages.length = 0;
        this.lastSeq = reply.last_seq;
        this.handlers.onReset?.();
        return;
      }
      // `missed` runs oldest first; when truncated its first seq is past ours and the gap
      // repair in #deliver pages back through the rest.
      for (const m of reply.missed) await this.#deliver(m);
    }, false);
  }

  /** Stops a re-join under way (the client was closed); the next `connect()` re-joins afresh. */
  suspend(): void {
    this.#endRejoin();
  }

  /** A `room.message` push for this room. */
  receive(message: ChatMessage): void {
    void this.#enqueue(() => this.#deliver(message), false);
  }

  /** A `presence` push for this room. */
  presence(p: PushOf<"presence">): void {
    if (p.state === "joined" && !this.online.includes(p.user)) {
      this.online.push(p.user);
      this.onlineCount += 1;
    } else if (p.state === "left" && this.online.includes(p.user)) {
      this.online = this.online.filter((u) => u !== p.user);
      this.onlineCount = Math.max(0, this.onlineCount - 1);
    }
    this.handlers.onPresence?.(p);
  }

  /**
   * Sends a message. Its `client_msg_id` is generated once (or given) and reused by every
   * retry, so a lost reply or a reconnect never stores it twice. Resolves once it is durable.
   */
  send(text: string, options?: { clientMsgId?: string }): Promise<RoomSendOk> {
    const client_msg_id = options?.clientMsgId ?? this.host.newKey();
    return this.host.retrying("room.send", { room: this.id, text, client_msg_id });
  }

  /** Up to `limit` messages before `beforeSeq` (the newest when absent), oldest first. Does not touch `messages`. */
  async history(options: { beforeSeq?: number; limit?: number } = {}): Promise<ChatMessage[]> {
    const reply = await this.host.request("room.history", {
      room: this.id,
      limit: options.limit ?? 50,
      ...(options.beforeSeq === undefined ? {} : { before_seq: options.beforeSeq }),
    });
    return reply.messages;
  }

  /** Leaves the room: no more messages, no re-join (one under way stops). */
  async leave(): Promise<void> {
    this.joined = false;
    this.#endRejoin();
    this.host.forget(this);
    await this.host.request("room.leave", { room: this.id });
  }

  /**
   * The re-join reply for this session, or `null` when there is none to apply: the run was
   * aborted (a newer session's re-join, `leave()`, `close()`), the socket dropped (the next
   * session re-joins), or the server refused for good (the room ends, the app is told).
   */
  async #rejoinReply(signal: AbortSignal): Promise<RoomJoinOk | null> {
    const { deadlineMs, backoff } = this.host.rejoinPolicy;
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted || !this.joined || !this.host.connected()) return null;
      let error: CorralError;
      try {
        const reply = await this.host.request("room.join", { room: this.id, since: this.lastSeq });
        return signal.aborted || !this.joined ? null : reply;
      } catch (err) {
        error = err instanceof CorralError ? err : new CorralError("protocol", String(err));
      }
      if (signal.aborted || !this.joined) return null;
      if (error.code === "disconnected" || error.code === "closed") return null;
      if (!error.retryable) {
        // `forbidden`, `not_found`, `limit_reached`: asking again will not change the answer.
        this.joined = false;
        this.#endRejoin();
        this.host.forget(this);
        this.handlers.onError?.(error);
        return null;
      }
      const failingMs = Date.now() - (this.#rejoinSince ?? Date.now());
      if (!this.#rejoinOverdueTold && failingMs >= deadlineMs) {
        this.#rejoinOverdueTold = true;
        const overdue = new CorralError(
          error.code,
          `room ${this.id} not re-joined after ${failingMs} ms, still retrying: ${error.message}`,
          undefined,
          { cause: error, retryAfterMs: error.retryAfterMs },
        );
        try {
          this.handlers.onError?.(overdue);
        } catch {
          // A throwing handler must not stop the re-join.
        }
      }
      await sleep(retryDelay(attempt, error, backoff), signal);
    }
  }

  /** Ends the re-join under way, if any: its wait is cancelled and the next one starts afresh. */
  #endRejoin(): void {
    this.#rejoinRun?.abort();
    this.#rejoinRun = null;
    this.#rejoinSince = null;
    this.#rejoinOverdueTold = false;
    this.rejoining = false;
  }

  #adopt(reply: RoomJoinOk): void {
    this.epoch = reply.epoch;
    this.online = [...reply.online];
    this.onlineCount = reply.online_count;
  }

  /** Delivers one message: drops a held seq, repairs a gap before it from history. */
  async #deliver(m: ChatMessage): Promise<void> {
    if (!this.joined || m.seq <= this.lastSeq) return;
    if (m.seq > this.lastSeq + 1) {
      for (const older of await this.#page(m.seq, this.lastSeq + 1)) this.#accept(older);
    }
    this.#accept(m);
  }

  #accept(m: ChatMessage): void {
    if (m.seq <= this.lastSeq) return;
    this.lastSeq = m.seq;
    this.#keep([m]);
    this.handlers.onMessage?.(m);
    this.host.emit(m);
  }

  #keep(list: ChatMessage[]): void {
    this.messages.push(...list);
    const keep = this.handlers.keep ?? 1000;
    if (this.messages.length > keep) this.messages.splice(0, this.messages.length - keep);
  }

  /** The messages with `from <= seq < before`, oldest first, paging back through history. */
  async #page(before: number, from: number): Promise<ChatMessage[]> {
    const pages: ChatMessage[][] = [];
    let cursor = before;
    while (cursor > from) {
      const reply = await this.host.request("room.history", {
        room: this.id,
        before_seq: cursor,
        limit: Math.min(PAGE, cursor - from),
      });
      const got = reply.messages.filter((m) => m.seq >= from && m.seq < cursor);
      if (got.length === 0) break; // the start of the room's history
      pages.unshift(got);
      cursor = got[0]!.seq;
    }
    return pages.flat();
  }

  /** Runs `task` after everything queued before it; `propagate` returns its failure to the caller. */
  #enqueue(task: () => Promise<void>, propagate: boolean): Promise<void> {
    const run = this.#chain.then(task);
    this.#chain = run.catch((err: unknown) => {
      if (propagate) return;
      const error = err instanceof CorralError ? err : new CorralError("protocol", String(err));
      // A message lost to a dropped socket comes back with the next re-join's `missed`.
      if (error.code !== "disconnected" && error.code !== "closed") this.handlers.onError?.(error);
    });
    return run;
  }
}
