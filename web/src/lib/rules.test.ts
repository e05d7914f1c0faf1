// Rules in plain words, and the console's choices to rules and back.
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { choicesOf, describeRules, unmetWords, withChoices } from "./rules.ts";

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

test("every rule has plain words, and no rules say nothing", () => {
  assert.deepEqual(describeRules(undefined, day), []);
  const words = describeRules(
    {
      audience: { followers_only: true, registered_before: Date.UTC(2026, 10, 1), new_users_since: null },
      requires: [
        { kind: "posts", min: 3, since: Date.UTC(2026, 9, 1) },
        { kind: "invited", min: 1 },
        { kind: "confirmed_claims", min: 2, merchant_only: true },
        { kind: "follows_merchant" },
      ],
    },
    day,
  );
  assert.deepEqual(words, [
    "followers only",
    "accounts from before 2026-11-01",
    "3 posts since 2026-10-01",
    "1 friend invited",
    "2 paid adoptions from you before",
    "must follow you",
  ]);
});

test("console choices become rules and read back, keeping rules the console does not offer", () => {
  assert.equal(withChoices(undefined, { followersOnly: false, invited: 0, loyal: 0, coupon: false }), null);
  const rules = withChoices(undefined, { followersOnly: true, invited: 1, loyal: 2, coupon: false });
  assert.deepEqual(rules, {
    audience: { followers_only: true },
    requires: [
      { kind: "invited", min: 1 },
      { kind: "confirmed_claims", min: 2, merchant_only: true },
    ],
    reward: { kind: "slot" },
  });
  assert.deepEqual(choicesOf(rules ?? undefined), { followersOnly: true, invited: 1, loyal: 2, coupon: false });
  assert.deepEqual(choicesOf(undefined), { followersOnly: false, invited: 0, loyal: 0, coupon: false });
  const posts = { requires: [{ kind: "posts" as const, min: 2, since: 5 }] };
  assert.deepEqual(withChoices(posts, { followersOnly: false, invited: 0, loyal: 0, coupon: false }), {
    audience: { followers_only: false },
    requires: [{ kind: "posts", min: 2, since: 5 }],
    reward: { kind: "slot" },
  });
});

test("a coupon reward is a choice of its own and reads back", () => {
  assert.deepEqual(withChoices(undefined, { followersOnly: false, invited: 0, loyal: 0, coupon: true }), {
    audience: { followers_only: false },
    requires: [],
    reward: { kind: "coupon" },
  });
  const flash = withChoices(undefined, { followersOnly: true, invited: 0, loyal: 0, coupon: true });
  assert.deepEqual(choicesOf(flash ?? undefined), { followersOnly: true, invited: 0, loyal: 0, coupon: true });
  assert.deepEqual(describeRules(flash ?? undefined, String), ["followers only", "a coupon code for each winner"]);
  assert.equal(withChoices(flash ?? undefined, { followersOnly: false, invited: 0, loyal: 0, coupon: false }), null);
});

test("what a user misses reads as a to-do", () => {
  assert.equal(unmetWords({ rule: "followers_only" }), "follow this farm or shop");
  assert.equal(unmetWords({ rule: "invited", need: 1, have: 0 }), "friends invited with your code: 1 needed, you have 0");
});
