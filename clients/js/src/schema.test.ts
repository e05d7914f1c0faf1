//! Unit tests of the decoder DSL.

import assert from "node:assert/strict";
import { test } from "node:test";
import { array, int, LENIENT, nullable, object, oneOf, optional, SchemaError, str, STRICT, uint } from "./schema.js";

const msg = object({ seq: uint, text: str, animal: nullable(int), before: optional(int), kind: oneOf(["a", "b"]) });

test("an object decodes its fields, nullable absent becomes null, optional absent stays absent", () => {
  const got = msg.parse({ seq: 3, text: "hi", kind: "a" }, "", STRICT);
  assert.deepEqual(got, { seq: 3, text: "hi", animal: null, kind: "a" });
  assert.equal("before" in got, false);
});

test("wrong types, missing fields and bad enum values are errors naming the field", () => {
  assert.throws(() => msg.parse({ seq: -1, text: "x", kind: "a" }, "", LENIENT), /seq: expected unsigned integer/);
  assert.throws(() => msg.parse({ seq: 1, kind: "a" }, "", LENIENT), /text: expected string/);
  assert.throws(() => msg.parse({ seq: 1.5, text: "x", kind: "a" }, "", LENIENT), SchemaError);
  assert.throws(() => msg.parse({ seq: 1, text: "x", kind: "c" }, "", LENIENT), /kind: expected one of a\|b/);
  assert.throws(() => array(int).parse([1, "2"], "list", LENIENT), /list\[1\]: expected integer/);
  assert.throws(() => msg.parse([1], "", LENIENT), /expected object/);
});

test("strict mode rejects unknown fields, lenient mode drops them", () => {
  const input = { seq: 1, text: "x", kind: "b", extra: true };
  assert.throws(() => msg.parse(input, "", STRICT), /extra: expected no such field/);
  assert.deepEqual(msg.parse(input, "", LENIENT), { seq: 1, text: "x", animal: null, kind: "b" });
});

test("integers beyond 2^53 are refused rather than silently rounded", () => {
  assert.throws(() => int.parse(2 ** 53 + 2, "id", LENIENT), /id: expected integer/);
});
