//! Unit tests of the reconnect policy.

import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay, classifyClose } from "./backoff.js";

test("backoff doubles per attempt with equal jitter, and is capped", () => {
  const lo = { baseMs: 100, maxMs: 1_000, random: () => 0 };
  const hi = { ...lo, random: () => 0.999999 };
  assert.equal(backoffDelay(0, lo), 50);
  assert.equal(backoffDelay(1, lo), 100);
  assert.equal(backoffDelay(3, lo), 400);
  assert.equal(backoffDelay(10, lo), 500);
  assert.ok(backoffDelay(0, hi) < 100 && backoffDelay(0, hi) > 99);
  assert.ok(backoffDelay(50, hi) < 1_000);
});

test("close codes: 1008 stops, 4008 and overload back off harder, going-away and drops reconnect", () => {
  assert.equal(classifyClose(1008).kind, "stop");
  const slow = classifyClose(4008);
  assert.ok(slow.kind === "backoff" && slow.minAttempt >= 3);
  const overload = classifyClose(1013);
  assert.ok(overload.kind === "backoff" && overload.minAttempt >= 2);
  for (const code of [1000, 1001, 1006, 4000]) {
    const v = classifyClose(code);
    assert.ok(v.kind === "backoff" && v.minAttempt === 0, `code ${code}`);
  }
});
