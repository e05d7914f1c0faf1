//! A countdown to `starts_at` on the synced server clock: "claim now" fires when the server's
//! clock (as estimated) reaches the start, not when `activity.started` happens to arrive.

import type { ClockView } from "./clock.js";

export interface CountdownHandlers {
  /** Milliseconds left (> 0), about every `tickMs`, aligned to whole seconds left. */
  onTick?(msLeft: number): void;
  /** The server clock reached `startsAt`: claim now. Called once. */
  onOpen?(): void;
  /** Tick period, ms. Default 1,000. */
  tickMs?: number;
}

export interface Countdown {
  /** Stops the timers (no more calls). */
  stop(): void;
  /** Milliseconds left right now (0 once open). */
  msLeft(): number;
}

/**
 * Counts down to `startsAt` (server epoch ms) on `clock`. Each tick re-reads the clock, so a
 * re-sync or a throttled background tab never accumulates drift, and the last timer is armed
 * for the start instant itself.
 */
export function countdown(startsAt: number, clock: ClockView, handlers: CountdownHandlers = {}): Countdown {
  const tickMs = handlers.tickMs ?? 1000;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;
  const left = () => Math.max(0, startsAt - clock.now());
  const step = () => {
    timer = null;
    if (stopped) return;
    const ms = left();
    if (ms <= 0) {
      stopped = true;
      handlers.onOpen?.();
      return;
    }
    handlers.onTick?.(ms);
    // Next wake-up: just past the next whole tick boundary of the time left (waking a hair
    // early would show the same whole second twice), or the start itself.
    const toBoundary = ms % tickMs || tickMs;
    timer = setTimeout(step, Math.min(toBoundary + 2, ms));
  };
  step();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
    msLeft: left,
  };
}
