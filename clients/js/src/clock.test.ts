//! Unit tests of the server clock estimate.

import assert from "node:assert/strict";
import { test } from "node:test";
import { ServerClock, type TimeSources } from "./clock.js";

function fakeTime(wall: number, mono: number) {
  const t = { wall, mono };
  const sources: TimeSources = { wall: () => t.wall, mono: () => t.mono };
  return { t, sources };
}

test("the sample with the smallest round trip wins, and the offset follows the protocol's formula", () => {
  const { t, sources } = fakeTime(1_000_000, 500);
  const clock = new ServerClock(sources);
  assert.equal(clock.synced, false);
  assert.equal(clock.now(), 1_000_000); // before a sync: the device clock
  // Server is 10 s ahead. A slow sample (rtt 300, asymmetric) and a fast one (rtt 20).
  clock.applyRound([
    { t0: 1_000_000, mono0: 500, serverTime: 1_010_250, t2: 1_000_300, mono2: 800 },
    { t0: 1_000_400, mono0: 900, serverTime: 1_010_410, t2: 1_000_420, mono2: 920 },
  ]);
  assert.equal(clock.rttMs, 20);
  // At mono 920 (the fast sample's arrival) the server reads 1_010_410 + 10.
  t.mono = 920;
  t.wall = 1_000_420;
  assert.equal(clock.now(), 1_010_420);
  assert.equal(clock.offsetMs, 10_000); // server_time - (t0 + t2) / 2
});

test("between syncs the clock runs on the monotonic source: changing the device time moves nothing", () => {
  const { t, sources } = fakeTime(5_000, 0);
  const clock = new ServerClock(sources);
  clock.applyRound([{ t0: 5_000, mono0: 0, serverTime: 9_005, t2: 5_010, mono2: 10 }]);
  t.mono = 1_010;
  t.wall = 5_000 - 3_600_000; // the user set the device back an hour
  assert.equal(clock.now(), 10_010); // 9_005 read at mono 5 (mid round trip), plus 1_005 ms
});

test("a countdown tick that disagrees with the estimate by more than rtt + slack is detected", () => {
  const { t, sources } = fakeTime(0, 0);
  const clock = new ServerClock(sources);
  clock.applyRound([{ t0: 0, mono0: 0, serverTime: 100, t2: 40, mono2: 40 }]);
  t.mono = 40;
  assert.equal(clock.agrees(clock.now() + 80), true);
  assert.equal(clock.agrees(clock.now() + 500), false);
});
