//! Unit tests of the countdown helper.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { ClockView } from "./clock.js";
import { countdown } from "./countdown.js";

function skewedClock(offsetMs: number): ClockView {
  return { now: () => Date.now() + offsetMs, offsetMs, rttMs: 2, synced: true };
}

test("opens when the synced server clock reaches starts_at, not the device clock", async () => {
  // The server is 60 s ahead of this device: starts_at is 60.15 s away on the device clock but
  // 150 ms away on the server's.
  const clock = skewedClock(60_000);
  const startsAt = clock.now() + 150;
  const ticks: number[] = [];
  const opened = await new Promise<number>((resolve) => {
    countdown(startsAt, clock, { tickMs: 50, onTick: (ms) => ticks.push(ms), onOpen: () => resolve(clock.now()) });
  });
  assert.ok(opened >= startsAt, "never before the start");
  assert.ok(ticks.length >= 2, `ticks: ${ticks.join(",")}`);
  assert.ok(ticks.every((ms, i) => i === 0 || ms < ticks[i - 1]!), "time left only decreases");
  // Each whole tick left is shown once: the display never repeats a number.
  const shown = ticks.map((ms) => Math.ceil(ms / 50));
  assert.deepEqual(shown, [...new Set(shown)], `shown: ${shown.join(",")}`);
});

test("a start already past opens at once; stop() silences it", async () => {
  const clock = skewedClock(0);
  let opened = 0;
  countdown(clock.now() - 10, clock, { onOpen: () => opened++ });
  assert.equal(opened, 1);
  let calls = 0;
  const c = countdown(clock.now() + 60, clock, { tickMs: 20, onTick: () => calls++, onOpen: () => calls++ });
  c.stop();
  const before = calls;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(calls, before);
  assert.ok(c.msLeft() === 0 || c.msLeft() < 60);
});
