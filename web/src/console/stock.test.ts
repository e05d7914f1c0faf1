// Rebuilding the stock chart from the claims of a promotion.
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { stockHistory } from "./stock.ts";

test("each claim takes a slot at its time and an expired hold gives it back", () => {
  const claims = [
    { status: "held", created_at: 1_200, expires_at: 9_000 },
    { status: "expired", created_at: 1_100, expires_at: 1_500 },
    { status: "confirmed", created_at: 1_300, expires_at: 9_000 },
  ];
  assert.deepEqual(stockHistory(claims, 3, 1_000, 2_000), [
    { at: 1_000, value: 3 },
    { at: 1_100, value: 2 },
    { at: 1_200, value: 1 },
    { at: 1_300, value: 0 },
    { at: 1_500, value: 1 },
  ]);
});

test("no claims: the full stock from the start; same-time changes make one point", () => {
  assert.deepEqual(stockHistory([], 5, 1_000, 2_000), [{ at: 1_000, value: 5 }]);
  const two = [
    { status: "held", created_at: 1_000, expires_at: 9_000 },
    { status: "held", created_at: 1_000, expires_at: 9_000 },
  ];
  assert.deepEqual(stockHistory(two, 2, 1_000, 2_000), [{ at: 1_000, value: 0 }]);
});
