//! Watching one activity (promotion): its state, times, stock and whether this user may claim
//! under its rules, kept current by pushes and re-anchored by a fresh `activity.subscribe`
//! after every reconnect.

import type { ServerClock } from "./clock.js";
import { CorralError } from "./errors.js";
import type { ActivityState, ActivitySubscribeOk, EndReason, PushOf } from "./wire.js";

type ActivityPush = PushOf<
  "activity.countdown" | "activity.started" | "activity.ended" | "activity.stock" | "activity.broadcast" | "activity.eligibility"
>;

/** A rule of the promotion this user does not meet (`need`/`have` for a count). */
export type Unmet = ActivitySubscribeOk["unmet"][number];

export interface ActivityHandlers {
  /** Any change of `state`, `stockLeft`, `startsAt`/`endsAt`, `eligible` (also after a re-subscribe). */
  onChange?(watch: ActivityWatch): void;
  /** A merchant broadcast to the activity's watchers. */
  onBroadcast?(push: PushOf<"activity.broadcast">): void;
  /** The activity could not be re-subscribed after a reconnect. */
  onError?(error: CorralError): void;
}

/** What a watch needs from its client. */
export interface WatchHost {
  subscribe(): Promise<ActivitySubscribeOk>;
  unsubscribe(): Promise<void>;
  forget(watch: ActivityWatch): void;
  resyncClock(): void;
}

export class ActivityWatch {
  /** `scheduled`, `live`, `ended` or `cancelled` (as the server last said). */
  state: ActivityState = "scheduled";
  /** When claims open and close (server clock, epoch ms). */
  startsAt = 0;
  endsAt = 0;
  /** Slots neither held nor confirmed. */
  stockLeft = 0;
  /** Why it ended, once it has. */
  endReason: EndReason | null = null;
  /** Whether this user may claim under the promotion's rules (decided by the server). */
  eligible = true;
  /** The rules this user does not meet (empty when eligible). */
  unmet: Unmet[] = [];
  /** Whether pushes still arrive (false once ended or unsubscribed). */
  active = true;

  constructor(
    readonly id: number,
    private readonly handlers: ActivityHandlers,
    private readonly clock: ServerClock,
    private readonly host: WatchHost,
  ) {}

  /** Whether claims are open by the synced server clock (not waiting for `activity.started`). */
  get open(): boolean {
    if (this.state === "ended" || this.state === "cancelled") return false;
    const now = this.clock.now();
    return now >= this.startsAt && now < this.endsAt;
  }

  /** First subscription. */
  async subscribe(): Promise<void> {
    this.#adopt(await this.host.subscribe());
  }

  /** After a reconnect: the reply re-anchors state, times and stock. */
  resubscribe(): void {
    if (!this.active) return;
    this.host.subscribe().then(
      (reply) => this.#adopt(reply),
      (err: unknown) => {
        const error = err instanceof CorralError ? err : new CorralError("protocol", String(err));
        if (error.code !== "disconnected" && error.code !== "closed") this.handlers.onError?.(error);
      },
    );
  }

  /** Stops watching. */
  async unsubscribe(): Promise<void> {
    this.active = false;
    this.host.forget(this);
    await this.host.unsubscribe();
  }

  /** An activity push for this watch. */
  receive(push: ActivityPush): void {
    switch (push.ev) {
      case "activity.countdown":
        // A tick is sent at starts_at - k s: if our estimate disagrees, re-sync the clock.
        if (this.clock.synced && !this.clock.agrees(this.startsAt - push.seconds_left * 1000)) {
          this.host.resyncClock();
        }
        return;
      case "activity.started":
        if (this.state === "scheduled") this.state = "live";
        break;
      case "activity.ended":
        this.state = push.reason === "cancelled" ? "cancelled" : "ended";
        this.endReason = push.reason;
        this.#finish();
        break;
      case "activity.stock":
        this.stockLeft = push.left;
        break;
      case "activity.eligibility":
        this.eligible = push.eligible;
        this.unmet = push.unmet;
        break;
      case "activity.broadcast":
        this.handlers.onBroadcast?.(push);
        return;
    }
    this.handlers.onChange?.(this);
  }

  #adopt(reply: ActivitySubscribeOk): void {
    this.state = reply.state;
    this.startsAt = reply.starts_at;
    this.endsAt = reply.ends_at;
    this.stockLeft = reply.stock_left;
    this.eligible = reply.eligible;
    this.unmet = reply.unmet;
    if (reply.state === "ended" || reply.state === "cancelled") this.#finish();
    this.handlers.onChange?.(this);
  }

  /** The server ends the subscription with the activity: nothing to re-subscribe. */
  #finish(): void {
    this.active = false;
    this.host.forget(this);
  }
}
