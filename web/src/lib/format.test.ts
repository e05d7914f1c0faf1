// Unit tests of the formatting helpers (run by `npm test` through node's test runner).
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { duration, fromLocalInput, price, toLocalInput } from "./format.ts";

test("durations read like a person would say them", () => {
  assert.equal(duration(0), "0 s");
  assert.equal(duration(-5000), "0 s");
  assert.equal(duration(8_001), "9 s");
  assert.equal(duration(249_000), "4 min 09 s");
  assert.equal(duration(7_500_000), "2 h 05 min");
  assert.equal(duration(2 * 86_400_000 + 3_600_000), "2 d 1 h");
});

test("prices are shown in units with two decimals", () => {
  assert.equal(price(1250), "12.50");
  assert.equal(price(5), "0.05");
});

test("datetime-local values round-trip to the second", () => {
  const ms = Date.UTC(2030, 4, 6, 7, 8, 9);
  assert.equal(fromLocalInput(toLocalInput(ms)), ms);
  assert.ok(Number.isNaN(fromLocalInput("")));
});
