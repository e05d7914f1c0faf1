//! A joined chat room: delivers every message once and in `seq` order, across reconnects.
//!
//! Everything that changes the room (the join reply, pushes, gap repair) runs through one
//! promise chain, so a re-join's `missed` is applied before the pushes that follow it and a
//! message whose `seq` is already held is dropped wherever it came from.

import { CorralError } from "./errors.js";
import type { ChatMessage, OpName, ParamsOf, PushOf, ReplyOf, RoomJoinOk, RoomSendOk } from "./wire.js";

export interface RoomHandlers {
  /** A new message, in `seq` order, each `seq` once (live pushes, catch-up after a reconnect, gap repair). */
  onMessage?(message: ChatMessage): void;
  /** A user came (`joined`) or went (`left`). */
  onPresence?(presence: PushOf<"presence">): void;
  /** The room's history was reset on the server (a new `epoch`): drop what was shown. */
  onReset?(): void;
  /** The room could not be re-joined after a reconnect (e.g. `forbidden`: removed from a private room). */
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

  #chain: Promise<void> = Promise.resolve();
  #everJoined = false;

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

  /** After a reconnect: join again with `since` = the last seq held, then deliver what was missed. */
  rejoin(): void {
    if (!this.#everJoined || !this.joined) return;
    void this.#enqueue(async () => {
      let reply: RoomJoinOk;
      try {
        reply = await this.host.retrying("room.join", { room: this.id, since: this.lastSeq });
      } catch (err) {
        const error = err instanceof CorralError ? err : new CorralError("protocol", String(err));
        // A dropped socket brings another re-join with the next session. A transient failure
        // that outlived the retries is reported and retried at the next reconnect; a refusal
        // (`forbidden`, `not_found`, `limit_reached`) is final.
        if (error.code === "disconnected" || error.code === "closed") return;
        if (error.retryable) throw error;
        this.joined = false;
        this.host.forget(this);
        this.handlers.onError?.(error);
        return;
      }
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

  /** Leaves the room: no more messages, no re-join. */
  async leave(): Promise<void> {
    this.joined = false;
    this.host.forget(this);
    await this.host.request("room.leave", { room: this.id });
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
