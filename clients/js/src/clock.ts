//! The server clock, estimated NTP-style from `time.sync` samples (protocol/README.md, "Rendering
//! a countdown without drift"): keep the sample with the smallest round trip, then run on a
//! monotonic clock between syncs so a user changing the device time moves nothing.

/** One `time.sync` exchange as the client measured it. */
export interface SyncSample {
  /** Wall clock (epoch ms) when the request left: the `client_time` sent. */
  t0: number;
  /** The server's `server_time` in the reply. */
  serverTime: number;
  /** Wall clock when the reply arrived. */
  t2: number;
  /** Monotonic clock when the request left and when the reply arrived. */
  mono0: number;
  mono2: number;
}

/** Sources of time, injectable for tests. */
export interface TimeSources {
  /** Wall clock, epoch ms. */
  wall(): number;
  /** Monotonic clock, ms (e.g. `performance.now()`). */
  mono(): number;
}

export const SYSTEM_TIME: TimeSources = {
  wall: () => Date.now(),
  mono: () => performance.now(),
};

/** A read-only view of the synced clock, what countdowns and apps need. */
export interface ClockView {
  /** The server's time now (epoch ms): the synced estimate, or the device clock before any sync. */
  now(): number;
  /** `server - device` in ms, from the best sample (0 before any sync). */
  readonly offsetMs: number;
  /** Round trip of the best sample (its error bound is half of it); `Infinity` before any sync. */
  readonly rttMs: number;
  /** Whether at least one sample was taken. */
  readonly synced: boolean;
}

/** The server clock estimate, fed with samples by the client. */
export class ServerClock implements ClockView {
  #anchorServer = 0;
  #anchorMono = 0;
  #rtt = Infinity;
  #synced = false;

  constructor(private readonly time: TimeSources = SYSTEM_TIME) {}

  now(): number {
    if (!this.#synced) return this.time.wall();
    return this.#anchorServer + (this.time.mono() - this.#anchorMono);
  }

  get offsetMs(): number {
    return this.#synced ? this.now() - this.time.wall() : 0;
  }

  get rttMs(): number {
    return this.#rtt;
  }

  get synced(): boolean {
    return this.#synced;
  }

  /**
   * Adopts the best (smallest round trip) of a round of samples. A fresh round always replaces
   * the previous estimate: an old low-rtt sample ages (clock drift, a changed network path).
   */
  applyRound(samples: readonly SyncSample[]): void {
    let best: SyncSample | undefined;
    for (const s of samples) {
      if (!best || s.mono2 - s.mono0 < best.mono2 - best.mono0) best = s;
    }
    if (!best) return;
    // The server read its clock, on average, halfway through the round trip.
    this.#anchorServer = best.serverTime;
    this.#anchorMono = (best.mono0 + best.mono2) / 2;
    this.#rtt = best.mono2 - best.mono0;
    this.#synced = true;
  }

  /**
   * Whether the estimate agrees with an instant the server vouched for just now (a countdown
   * tick is sent at `starts_at - k * 1000`): within a round trip plus `slackMs`.
   */
  agrees(expectedNow: number, slackMs = 50): boolean {
    return Math.abs(this.now() - expectedNow) <= this.#rtt + slackMs;
  }
}
