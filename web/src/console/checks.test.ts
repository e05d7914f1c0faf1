// The console's form checks: each problem is reported on its own field, and server messages
// find their field.
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { ANIMAL_FIELDS, PROMOTION_FIELDS, checkAnimal, checkPromotion, fieldOf, parseCodes } from "./checks.ts";

const now = 1_000_000;
const good = { title: "Spring lambs", starts_at: now + 60_000, ends_at: now + 120_000, items: [{ animal_id: 1, slots: 1 }], per_user_limit: 1, hold_minutes: 15 };

test("a valid promotion has no errors", () => {
  assert.deepEqual(checkPromotion(good, now), {});
});

test("each promotion problem lands on its field", () => {
  assert.deepEqual(Object.keys(checkPromotion({ ...good, title: "  " }, now)), ["title"]);
  assert.deepEqual(Object.keys(checkPromotion({ ...good, starts_at: now - 1, ends_at: now + 5 }, now)), ["starts"]);
  assert.deepEqual(Object.keys(checkPromotion({ ...good, ends_at: good.starts_at }, now)), ["ends"]);
  assert.deepEqual(Object.keys(checkPromotion({ ...good, starts_at: Number.NaN }, now)), ["starts"]);
  assert.deepEqual(Object.keys(checkPromotion({ ...good, items: [] }, now)), ["items"]);
  assert.deepEqual(Object.keys(checkPromotion({ ...good, items: [{ animal_id: 1, slots: 0 }] }, now)), ["items"]);
  assert.deepEqual(Object.keys(checkPromotion({ ...good, per_user_limit: 0 }, now)), ["limit"]);
  assert.deepEqual(Object.keys(checkPromotion({ ...good, hold_minutes: 1441 }, now)), ["hold"]);
});

test("animal problems land on their fields", () => {
  const ok = { name: "Dolly", species: "sheep", price: "12.50", slots: "1", description: "" };
  assert.deepEqual(checkAnimal(ok), {});
  assert.deepEqual(Object.keys(checkAnimal({ ...ok, name: "", price: "-1", slots: "0" })).sort(), ["name", "price", "slots"]);
  assert.deepEqual(Object.keys(checkAnimal({ ...ok, price: "twelve" })), ["price"]);
  assert.deepEqual(Object.keys(checkAnimal({ ...ok, species: "x".repeat(65) })), ["species"]);
});

test("server messages find the field they name", () => {
  assert.equal(fieldOf("ends_at must be after starts_at", PROMOTION_FIELDS), "ends");
  assert.equal(fieldOf("animal 7 has only 1 slots", PROMOTION_FIELDS), "items");
  assert.equal(fieldOf("item slots must be >= 1", PROMOTION_FIELDS), "items");
  assert.equal(fieldOf("this belongs to another merchant", PROMOTION_FIELDS), null);
  assert.equal(fieldOf("price_cents must be >= 0", ANIMAL_FIELDS), "price");
  assert.equal(fieldOf("slots must be 1-1000000", ANIMAL_FIELDS), "slots");
});

test("pasted coupon codes are read one per line or comma, blanks dropped", () => {
  assert.deepEqual(parseCodes(" SPRING-1 \nSPRING-2,SPRING-3\r\n\n , "), ["SPRING-1", "SPRING-2", "SPRING-3"]);
  assert.deepEqual(parseCodes("   "), []);
});
