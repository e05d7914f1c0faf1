//! `CorralClient`: one WebSocket to a Corral node, kept alive. It matches replies to requests,
//! dispatches typed pushes, authenticates, keeps the server clock, and reconnects by itself
//! (jittered backoff, `server.going_away`, close codes), then re-joins rooms and re-subscribes
//! activities so the app sees every message once.

import { atLeastHint, backoffDelay, classifyClose, closeReasonHint, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
import { ServerClock, SYSTEM_TIME, type ClockView, type SyncSample, type TimeSources } from "./clock.js";
import { CorralError } from "./errors.js";
import { parseServerFrame } from "./frames.js";
import { Session } from "./session.js";
import { newKey } from "./ids.js";
import { retryIdempotent, sleep } from "./retry.js";
import { ActivityWatch, type ActivityHandlers } from "./activity.js";
import { Room, type RoomHandlers } from "./room.js";
import { LENIENT, STRICT, type DecodeMode } from "./schema.js";
import { OPEN, type WebSocketCtor, type WebSocketLike } from "./socket.js";
import {
  OPS,
  SUBPROTOCOL,
  type AnyPush,
  type AuthOk,
  type ClaimCancelOk,
  type ClaimOk,
  type DmSendOk,
  type OpName,
  type ParamsOf,
  type Post,
  type PostsPage,
  type PushName,
  type PushOf,
  type ReplyOf,
} from "./wire.js";

/** How the client obtains its token: re-read before every (re)authentication. */
export type TokenSource = string | (() => string | Promise<string>);

export interface ClientOptions {
  /** The node's WebSocket endpoint, e.g. `ws://127.0.0.1:8080/ws` or `wss://example.org/ws`. */
  url: string;
  /** A token from `POST /api/v1/auth/login`, or a function returning the current one. */
  token: TokenSource;
  /** The WebSocket constructor: the global one in browsers; `WebSocket` from `ws` in Node. */
  WebSocket?: WebSocketCtor;
  /** How long a request waits for its reply (and for the connection, when it is down), ms. Default 10,000. */
  requestTimeoutMs?: number;
  /**
   * How long `room.send`, `dm.send`, `claim` and a first `joinRoom` keep retrying, ms; a re-join
   * after a reconnect failing this long is reported to the room's `onError` once and goes on.
   * Default 60,000.
   */
  retryDeadlineMs?: number;
  /** Reconnect backoff: first ceiling and largest delay, ms. Defaults 500 and 30,000. */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Backoff between retries of a request and of a re-join (the server's `retry_after_ms` may ask for more), ms. Defaults 200 and 5,000. */
  retryBackoff?: { baseMs?: number; maxMs?: number };
  /** Random source in [0, 1) for jitter (tests pass a fixed one). Default `Math.random`. */
  random?: () => number;
  /** `time.sync` samples per clock round. Default 5. */
  clockSamples?: number;
  /** How often the clock is re-synced while connected, ms. Default 300,000. */
  clockRefreshMs?: number;
  /** With nothing heard for this long the client sends a `time.sync`; no reply means a dead socket. Default 30,000. */
  keepaliveMs?: number;
  /** A connection up this long resets the backoff, ms. Default 10,000. */
  stableAfterMs?: number;
  /** Reject frames with fields the SDK does not know (tests use it to catch protocol drift). Default false. */
  strictFrames?: boolean;
  /** Clock sources, for tests. */
  time?: TimeSources;
}

/** Where the connection stands. */
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** Why the state changed. */
export interface StateDetail {
  /** The close code of the socket that just closed. */
  closeCode?: number;
  /** Human-readable cause. */
  reason?: string;
  /** The reconnect attempt about to be made (0-based) and its delay. */
  attempt?: number;
  delayMs?: number;
  /** The error that stopped the client (e.g. `unauthenticated`). */
  error?: CorralError;
}

type Listener = (push: never) => void;

/** A Corral connection that reconnects, re-joins and re-subscribes by itself. */
export class CorralClient {
  /** The synced server clock. */
  readonly clock: ClockView;

  readonly #opts: Required<Omit<ClientOptions, "WebSocket" | "backoff" | "retryBackoff" | "time">>;
  readonly #ctor: WebSocketCtor;
  readonly #backoff: BackoffOptions;
  readonly #retryBackoff: BackoffOptions;
  readonly #mode: DecodeMode;
  readonly #time: TimeSources;
  readonly #clock: ServerClock;

  #state: ConnectionState = "idle";
  #session: Session | null = null;
  #everOpen = false;
  #attempt = 0;
  #user: AuthOk | null = null;
  #reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  #timers: ReturnType<typeof setInterval>[] = [];
  #cleanups: (() => void)[] = [];
  #connectWaiters: { resolve(auth: AuthOk): void; reject(err: CorralError): void }[] = [];
  #openWaiters = new Set<() => void>();
  #listeners = new Map<string, Set<Listener>>();
  #stateListeners = new Set<(state: ConnectionState, detail: StateDetail) => void>();
  #errorListeners = new Set<(err: CorralError) => void>();
  #rooms = new Map<number, Room>();
  #watches = new Map<number, ActivityWatch>();
  #started = new WeakMap<object, Promise<unknown>>();
  #syncing = false;

  constructor(options: ClientOptions) {
    const ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
    if (!ctor) throw new TypeError("no WebSocket: pass `WebSocket` (e.g. from the `ws` package) in Node");
    this.#ctor = ctor;
    this.#opts = {
      url: options.url,
      token: options.token,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      retryDeadlineMs: options.retryDeadlineMs ?? 60_000,
      random: options.random ?? Math.random,
      clockSamples: Math.max(1, options.clockSamples ?? 5),
      clockRefreshMs: options.clockRefreshMs ?? 300_000,
      keepaliveMs: options.keepaliveMs ?? 30_000,
      stableAfterMs: options.stableAfterMs ?? 10_000,
      strictFrames: options.strictFrames ?? false,
    };
    this.#backoff = {
      baseMs: options.backoff?.baseMs ?? DEFAULT_BACKOFF.baseMs,
      maxMs: options.backoff?.maxMs ?? DEFAULT_BACKOFF.maxMs,
      random: this.#opts.random,
    };
    this.#retryBackoff = {
      baseMs: options.retryBackoff?.baseMs ?? 200,
      maxMs: options.retryBackoff?.maxMs ?? 5_000,
      random: this.#opts.random,
    };
    this.#mode = this.#opts.strictFrames ? STRICT : LENIENT;
    this.#time = options.time ?? SYSTEM_TIME;
    this.#clock = new ServerClock(this.#time);
    this.clock = this.#clock;
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** Who the socket is authenticated as (the last `auth` reply), or `null`. */
  get user(): AuthOk | null {
    return this.#user;
  }

  /** The rooms joined through `joinRoom`, by id. */
  get rooms(): ReadonlyMap<number, Room> {
    return this.#rooms;
  }

  /** The activities watched through `watchActivity`, by id. */
  get watches(): ReadonlyMap<number, ActivityWatch> {
    return this.#watches;
  }

  /**
   * Opens the connection; resolves with the `auth` reply once authenticated. From then on the
   * client reconnects by itself until `close()` (or until the server refuses the token).
   */
  connect(): Promise<AuthOk> {
    if (this.#state === "open" && this.#user) return Promise.resolve(this.#user);
    const done = new Promise<AuthOk>((resolve, reject) => this.#connectWaiters.push({ resolve, reject }));
    if (this.#state === "idle" || this.#state === "closed") {
      this.#attempt = 0;
      this.#everOpen = false;
      this.#setState("connecting", {});
      this.#startTimers();
      this.#dial();
    }
    return done;
  }

  /** Closes the connection for good: no reconnect; pending and future requests reject with `closed`. */
  close(): void {
    this.#stop({ reason: "closed by the app" }, new CorralError("closed", "the client was closed"));
  }

  /** Calls `fn` on every state change; returns an unsubscribe function. */
  onState(fn: (state: ConnectionState, detail: StateDetail) => void): () => void {
    this.#stateListeners.add(fn);
    return () => this.#stateListeners.delete(fn);
  }

  /** Calls `fn` for frames that do not fit the protocol (and other background failures). */
  onError(fn: (err: CorralError) => void): () => void {
    this.#errorListeners.add(fn);
    return () => this.#errorListeners.delete(fn);
  }

  /** Calls `fn` for every push `ev`; returns an unsubscribe function. */
  on<E extends PushName>(ev: E, fn: (push: PushOf<E>) => void): () => void {
    let set = this.#listeners.get(ev);
    if (!set) this.#listeners.set(ev, (set = new Set()));
    set.add(fn as Listener);
    return () => set.delete(fn as Listener);
  }

  /**
   * Sends one request and resolves with its typed `ok` reply, or rejects with a `CorralError`
   * (the server's code, or `timeout` / `disconnected` / `closed`). While the client is
   * reconnecting the request waits for the connection, within the same timeout.
   */
  async request<K extends OpName>(op: K, params: ParamsOf<K>, options?: { timeoutMs?: number }): Promise<ReplyOf<K>> {
    const timeoutMs = options?.timeoutMs ?? this.#opts.requestTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    const session = await this.#whenOpen(timeoutMs);
    return session.send(op, params, Math.max(1, deadline - Date.now()));
  }

  /** Joins a room (re-joined with `since` after every reconnect). Joining twice returns the same room. */
  async joinRoom(roomId: number, handlers: RoomHandlers = {}): Promise<Room> {
    const existing = this.#rooms.get(roomId);
    if (existing) return this.#started.get(existing) as Promise<Room>;
    const room = new Room(roomId, handlers, {
      request: (op, params) => this.request(op, params),
      retrying: (op, params) => this.#retrying(op, params),
      rejoinPolicy: { deadlineMs: this.#opts.retryDeadlineMs, backoff: this.#retryBackoff },
      connected: () => this.#state === "open",
      emit: (msg) => this.#emit({ ...msg, ev: "room.message" }),
      forget: (r) => this.#untrack(this.#rooms, r),
      newKey,
    });
    return this.#track(this.#rooms, room, () => room.join());
  }

  /** Sends a direct message (its key generated once, retried safely). */
  sendDm(to: number, text: string, options?: { clientMsgId?: string }): Promise<DmSendOk> {
    const client_msg_id = options?.clientMsgId ?? newKey();
    return this.#retrying("dm.send", { to, text, client_msg_id });
  }

  /** Watches an activity (re-subscribed after every reconnect until it ends). */
  async watchActivity(activityId: number, handlers: ActivityHandlers = {}): Promise<ActivityWatch> {
    const existing = this.#watches.get(activityId);
    if (existing) return this.#started.get(existing) as Promise<ActivityWatch>;
    const watch = new ActivityWatch(activityId, handlers, this.#clock, {
      subscribe: () => this.#retrying("activity.subscribe", { activity: activityId }),
      unsubscribe: () => this.request("activity.unsubscribe", { activity: activityId }).then(() => undefined),
      forget: (w) => this.#untrack(this.#watches, w),
      resyncClock: () => void this.syncClock().catch(() => undefined),
    });
    return this.#track(this.#watches, watch, () => watch.subscribe());
  }

  /**
   * Claims a slot. The key is generated once (or given) and reused by every retry: on
   * `unavailable`, `internal`, `rate_limited`, a timeout or a reconnect, the same key is sent
   * again and the server answers with the one claim it holds for it. A `not_started` answer
   * (our clock estimate ran a little ahead of the server's) is retried at the watched
   * `starts_at` plus half a round trip, at most `notStartedRetries` times (default 3).
   */
  async claim(
    activityId: number,
    options: { item?: number; key?: string; notStartedRetries?: number } = {},
  ): Promise<ClaimOk & { key: string }> {
    const key = options.key ?? newKey();
    const params = { activity: activityId, key, ...(options.item === undefined ? {} : { item: options.item }) };
    let notStarted = options.notStartedRetries ?? 3;
    for (;;) {
      try {
        return { ...(await this.#retrying("claim", params)), key };
      } catch (err) {
        if (!(err instanceof CorralError) || err.code !== "not_started" || notStarted-- <= 0) throw err;
        const startsAt = this.#watches.get(activityId)?.startsAt;
        const rtt = Number.isFinite(this.#clock.rttMs) ? this.#clock.rttMs : 100;
        const untilStart = startsAt === undefined ? 0 : startsAt - this.#clock.now();
        await sleep(Math.max(0, untilStart) + Math.max(10, rtt / 2));
      }
    }
  }

  /** Gives a held claim back. */
  cancelClaim(claimId: number): Promise<ClaimCancelOk> {
    return this.request("claim.cancel", { claim_id: claimId });
  }

  /** Follows a user (or a merchant). */
  async follow(userId: number): Promise<void> {
    await this.request("follow", { user: userId });
  }

  /** Stops following a user. */
  async unfollow(userId: number): Promise<void> {
    await this.request("unfollow", { user: userId });
  }

  /** Posts to the caller's followers (merchants may tag an animal). */
  post(text: string, options?: { media?: string[]; animal?: number }): Promise<ReplyOf<"feed.post">> {
    return this.request("feed.post", { text, ...options });
  }

  /** A page of the caller's timeline, newest first; pass `next_before` as `before` for the next. */
  timeline(options: { before?: number; limit?: number } = {}): Promise<PostsPage> {
    return this.request("feed.timeline", { limit: options.limit ?? 20, ...(options.before === undefined ? {} : { before: options.before }) });
  }

  /** A page of one author's posts, newest first. */
  profile(userId: number, options: { before?: number; limit?: number } = {}): Promise<PostsPage> {
    return this.request("feed.profile", {
      user: userId,
      limit: options.limit ?? 20,
      ...(options.before === undefined ? {} : { before: options.before }),
    });
  }

  /** Likes a post. */
  like(postId: number): Promise<ReplyOf<"feed.like">> {
    return this.request("feed.like", { post: postId });
  }

  /** Takes a like back. */
  unlike(postId: number): Promise<ReplyOf<"feed.unlike">> {
    return this.request("feed.unlike", { post: postId });
  }

  /** Comments on a post. */
  comment(postId: number, text: string): Promise<ReplyOf<"feed.comment">> {
    return this.request("feed.comment", { post: postId, text });
  }

  /** Deletes one of the caller's posts. */
  async deletePost(postId: number): Promise<void> {
    await this.request("feed.delete", { post: postId });
  }

  /**
   * Takes a round of `time.sync` samples (one after another) and adopts the one with the
   * smallest round trip. Runs after every (re)authentication and every `clockRefreshMs`.
   */
  async syncClock(): Promise<void> {
    if (this.#syncing) return;
    this.#syncing = true;
    try {
      const samples: SyncSample[] = [];
      for (let i = 0; i < this.#opts.clockSamples; i++) {
        const t0 = Math.round(this.#time.wall());
        const mono0 = this.#time.mono();
        const reply = await this.request("time.sync", { client_time: t0 });
        samples.push({ t0, mono0, serverTime: reply.server_time, t2: this.#time.wall(), mono2: this.#time.mono() });
      }
      this.#clock.applyRound(samples);
    } finally {
      this.#syncing = false;
    }
  }

  // --- connection life ---

  #setState(state: ConnectionState, detail: StateDetail): void {
    this.#state = state;
    for (const fn of [...this.#stateListeners]) fn(state, detail);
    if (state === "open") {
      for (const wake of [...this.#openWaiters]) wake();
    }
  }

  #report(err: CorralError): void {
    for (const fn of [...this.#errorListeners]) fn(err);
  }

  #dial(): void {
    this.#reconnectTimer = null;
    let ws: WebSocketLike;
    try {
      ws = new this.#ctor(this.#opts.url, SUBPROTOCOL);
    } catch (cause) {
      this.#stop({ reason: `cannot open ${this.#opts.url}` }, new CorralError("network", String(cause), undefined, { cause }));
      return;
    }
    const session = new Session(ws, this.#mode);
    this.#session = session;
    ws.onopen = () => {
      if (this.#session === session) void this.#authenticate(session);
    };
    ws.onmessage = (event) => {
      if (this.#session === session) this.#onFrame(session, event.data);
    };
    ws.onclose = (event) => this.#onClosed(session, event.code, event.reason);
    ws.onerror = () => undefined; // a close event follows
  }

  async #authenticate(session: Session): Promise<void> {
    let auth: AuthOk;
    try {
      const source = this.#opts.token;
      const token = typeof source === "function" ? await source() : source;
      auth = await session.send("auth", { token }, this.#opts.requestTimeoutMs);
    } catch (err) {
      if (this.#session !== session) return;
      const error = err instanceof CorralError ? err : new CorralError("unauthenticated", String(err), undefined, { cause: err });
      if (error.code === "unauthenticated" || error.code === "bad_request") {
        // The server will refuse this token again: reconnecting would only hammer it.
        this.#stop({ reason: `authentication refused: ${error.message}`, error }, error);
      } else {
        this.#abandon(session, 4000, `auth failed: ${error.message}`);
      }
      return;
    }
    if (this.#session !== session) return;
    session.authedAt = Date.now();
    this.#user = auth;
    this.#everOpen = true;
    this.#setState("open", {});
    for (const w of this.#connectWaiters.splice(0)) w.resolve(auth);
    // Restore in the order frames were queued: each room's re-join is queued before any push
    // the new socket can deliver, so its `missed` is applied before later pushes.
    for (const room of this.#rooms.values()) room.rejoin();
    for (const watch of this.#watches.values()) watch.resubscribe();
    this.syncClock().catch((err: unknown) => {
      if (err instanceof CorralError && err.code !== "disconnected" && err.code !== "closed") this.#report(err);
    });
  }

  #onFrame(session: Session, data: unknown): void {
    session.lastHeard = Date.now();
    if (typeof data !== "string") {
      this.#report(new CorralError("protocol", "binary frame from the server"));
      return;
    }
    let frame;
    try {
      frame = parseServerFrame(data, this.#mode);
    } catch (err) {
      this.#report(err as CorralError);
      return;
    }
    if (frame.kind === "unknown_push") return;
    if (frame.kind === "push") {
      if (frame.push.ev === "server.going_away") session.goingAwayMs = frame.push.reconnect_after_ms;
      this.#route(frame.push);
      return;
    }
    if (frame.re === null) {
      this.#report(new CorralError(frame.error?.code ?? "protocol", frame.error?.message ?? "reply without id"));
      return;
    }
    const err = session.settle({ ...frame, re: frame.re });
    if (err) this.#report(err);
  }

  #route(push: AnyPush): void {
    switch (push.ev) {
      case "room.message": {
        const room = this.#rooms.get(push.room);
        // A joined room delivers each seq once (and emits it); others go straight out.
        if (room) room.receive(push);
        else this.#emit(push);
        return;
      }
      case "presence":
        this.#rooms.get(push.room)?.presence(push);
        break;
      case "activity.countdown":
      case "activity.started":
      case "activity.ended":
      case "activity.stock":
      case "activity.broadcast":
      case "activity.eligibility":
        this.#watches.get(push.activity)?.receive(push);
        break;
      default:
        break;
    }
    this.#emit(push);
  }

  #emit(push: AnyPush): void {
    const set = this.#listeners.get(push.ev);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as (p: AnyPush) => void)(push);
      } catch (err) {
        this.#report(new CorralError("protocol", `a \`${push.ev}\` handler threw: ${String(err)}`, undefined, { cause: err }));
      }
    }
  }

  #onClosed(session: Session, code: number, reason: string): void {
    if (this.#session !== session) return;
    this.#session = null;
    session.failAll((op) => new CorralError("disconnected", `socket closed (${code}) before the \`${op}\` reply`));
    if (this.#state === "closed") return;
    const verdict = classifyClose(code);
    if (verdict.kind === "stop") {
      this.#stop({ closeCode: code, reason: verdict.reason }, new CorralError("closed", verdict.reason));
      return;
    }
    let delayMs: number;
    if (session.goingAwayMs !== null) {
      // The node spread its clients' reconnects itself; its delay replaces our backoff.
      this.#attempt = 0;
      delayMs = session.goingAwayMs;
    } else {
      if (session.authedAt !== null && Date.now() - session.authedAt >= this.#opts.stableAfterMs) this.#attempt = 0;
      this.#attempt = Math.max(this.#attempt, verdict.minAttempt);
      // A close reason carrying the server's hint (4008, 1013) is honoured: no sooner than that.
      delayMs = atLeastHint(backoffDelay(this.#attempt, this.#backoff), closeReasonHint(reason), this.#backoff.random);
      this.#attempt += 1;
    }
    this.#setState(this.#everOpen ? "reconnecting" : "connecting", {
      closeCode: code,
      reason: reason || verdict.reason,
      attempt: this.#attempt,
      delayMs,
    });
    this.#reconnectTimer = setTimeout(() => this.#dial(), delayMs);
  }

  /** Gives up on a socket that stopped answering: handle it as closed now, without waiting for its close handshake. */
  #abandon(session: Session, code: number, reason: string): void {
    session.detach(code, reason);
    this.#onClosed(session, code, reason);
  }

  #stop(detail: StateDetail, error: CorralError): void {
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    for (const undo of this.#cleanups.splice(0)) undo();
    // A re-join waiting out its backoff stops now; the next `connect()` re-joins.
    for (const room of this.#rooms.values()) room.suspend();
    const session = this.#session;
    this.#session = null;
    const wasClosed = this.#state === "closed";
    this.#state = "closed";
    if (session) {
      session.detach(1000, "client closed");
      session.failAll(() => error);
    }
    for (const w of this.#connectWaiters.splice(0)) w.reject(detail.error ?? error);
    for (const wake of [...this.#openWaiters]) wake();
    if (!wasClosed) this.#setState("closed", detail);
  }

  #startTimers(): void {
    const keepalive = setInterval(() => {
      const s = this.#session;
      if (this.#state !== "open" || !s || Date.now() - s.lastHeard < this.#opts.keepaliveMs) return;
      s.send("time.sync", { client_time: Date.now() }, this.#opts.requestTimeoutMs).catch((err: unknown) => {
        if (err instanceof CorralError && err.code === "timeout" && this.#session === s) {
          this.#abandon(s, 4000, "no reply to a keepalive");
        }
      });
    }, Math.max(1000, Math.floor(this.#opts.keepaliveMs / 2)));
    const refresh = setInterval(() => {
      if (this.#state === "open") this.syncClock().catch(() => undefined);
    }, this.#opts.clockRefreshMs);
    // Timers must not keep a Node process alive on their own.
    for (const t of [keepalive, refresh]) (t as { unref?: () => void }).unref?.();
    this.#timers.push(keepalive, refresh);
    // A browser tab back from the background had its timers frozen: re-sync the clock.
    const doc = (globalThis as { document?: Document }).document;
    if (doc) {
      const onVisible = () => {
        if (doc.visibilityState === "visible" && this.#state === "open") this.syncClock().catch(() => undefined);
      };
      doc.addEventListener("visibilitychange", onVisible);
      this.#cleanups.push(() => doc.removeEventListener("visibilitychange", onVisible));
    }
  }

  /** Resolves with the open session, waiting up to `timeoutMs` for a reconnect. */
  #whenOpen(timeoutMs: number): Promise<Session> {
    const ready = (): Session | null =>
      this.#state === "open" && this.#session && this.#session.ws.readyState === OPEN ? this.#session : null;
    const now = ready();
    if (now) return Promise.resolve(now);
    if (this.#state === "closed" || this.#state === "idle") {
      return Promise.reject(new CorralError("closed", this.#state === "idle" ? "call connect() first" : "the client is closed"));
    }
    return new Promise<Session>((resolve, reject) => {
      const wake = () => {
        const s = ready();
        if (s) {
          done();
          resolve(s);
        } else if (this.#state === "closed") {
          done();
          reject(new CorralError("closed", "the client is closed"));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new CorralError("timeout", `not connected within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#openWaiters.delete(wake);
      };
      this.#openWaiters.add(wake);
    });
  }

  /**
   * Keeps `item` in `map` (so reconnects restore it) once `start()` succeeds; a second
   * `joinRoom`/`watchActivity` for the same id meanwhile gets the same start.
   */
  #track<T extends { id: number }>(map: Map<number, T>, item: T, start: () => Promise<void>): Promise<T> {
    map.set(item.id, item);
    const started = start().then(
      () => item,
      (err: unknown) => {
        this.#untrack(map, item);
        throw err;
      },
    );
    this.#started.set(item, started);
    return started;
  }

  #untrack<T extends { id: number }>(map: Map<number, T>, item: T): void {
    if (map.get(item.id) === item) map.delete(item.id);
  }

  /** An idempotent request retried until the retry deadline (the params carry its key). */
  #retrying<K extends OpName>(op: K, params: ParamsOf<K>): Promise<ReplyOf<K>> {
    return retryIdempotent(() => this.request(op, params), {
      deadlineMs: this.#opts.retryDeadlineMs,
      backoff: this.#retryBackoff,
      cancelled: () => this.#state === "closed",
    });
  }
}
