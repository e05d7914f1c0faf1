//! Unit tests of the reconnect policy.

import assert from "node:assert/strict";
import { test } from "node:test";
import { atLeastHint, backoffDelay, classifyClose, closeReasonHint } from "./backoff.js";

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

test("the close reason's retry hint is read from its JSON form only", () => {
  assert.equal(closeReasonHint('{"retry_after_ms":2300}'), 2300);
  for (const reason of ["", "slow consumer", "{", '{"retry_after_ms":"2"}', '{"retry_after_ms":-1}', "null"]) {
    assert.equal(closeReasonHint(reason), undefined, reason);
  }
});

test("a server hint is a floor with the client's own jitter on top", () => {
  assert.equal(atLeastHint(40, undefined, () => 0.5), 40);
  assert.equal(atLeastHint(40, 1_000, () => 0), 1_000);
  assert.equal(atLeastHint(40, 1_000, () => 0.999999) < 1_250, true);
  assert.equal(atLeastHint(40, 1_000, () => 0.5), 1_125);
  assert.equal(atLeastHint(5_000, 1_000, () => 0.5), 5_000);
});
