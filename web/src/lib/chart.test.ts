// The stock chart's path: steps that hold a count until it changes, clamped to the window.
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { stepPath } from "./chart.ts";

test("a count steps down at each change and runs to the end of the window", () => {
  const d = stepPath(
    [
      { at: 0, value: 4 },
      { at: 50, value: 2 },
    ],
    0,
    100,
    4,
    100,
    40,
  );
  assert.equal(d, "M0.0,0.0 H50.0 V20.0 H100.0");
});

test("points outside the window are clamped and an empty series draws nothing", () => {
  assert.equal(stepPath([], 0, 10, 1, 10, 10), "");
  assert.equal(stepPath([{ at: -5, value: 1 }], 0, 10, 1, 10, 10), "M0.0,0.0 H10.0");
});
