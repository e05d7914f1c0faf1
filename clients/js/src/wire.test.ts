//! The SDK's wire types against the server's: every sample in `wire-fixtures.json` (serialized
//! from corral-protocol's Rust types by `tests/sdk_wire_fixtures.rs`, which fails when the file
//! is stale) and every JSON example in protocol/README.md must decode strictly, and the SDK's
//! field, op, push and enum lists must equal the protocol's.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { closeReasonHint } from "./backoff.js";
import { parseServerFrame } from "./frames.js";
import { STRICT, type ObjectSchema, type Schema } from "./schema.js";
import {
  ACTIVITY_STATES,
  CLAIM_STATUSES,
  CLOSE,
  END_REASONS,
  ERROR_CODES,
  OPS,
  postSchema,
  PRESENCE_STATES,
  RULE_KEYS,
  PUSHES,
  ROLES,
  SUBPROTOCOL,
  type OpName,
} from "./wire.js";

interface Fixtures {
  subprotocol: string;
  error_codes: string[];
  roles: string[];
  claim_statuses: string[];
  activity_states: string[];
  end_reasons: string[];
  presence_states: string[];
  rule_keys: string[];
  close_codes: Record<string, number>;
  error_replies: Record<string, unknown>[];
  retry_close_reason: string;
  ops: Record<string, { params: Record<string, unknown>[]; ok: Record<string, unknown>[] }>;
  pushes: Record<string, unknown>[];
}

const fixtures = JSON.parse(readFileSync(new URL("../wire-fixtures.json", import.meta.url), "utf8")) as Fixtures;
const readme = readFileSync(new URL("../../../protocol/README.md", import.meta.url), "utf8");

const sorted = (xs: Iterable<string>) => [...xs].sort();
const shapeKeys = (s: Schema<unknown>) => sorted(Object.keys((s as ObjectSchema<Record<string, Schema<unknown>>>).shape));

test("op names, push names, enums, close codes and the subprotocol equal corral-protocol's", () => {
  assert.deepEqual(sorted(Object.keys(OPS)), sorted(Object.keys(fixtures.ops)));
  assert.deepEqual(sorted(Object.keys(PUSHES)), sorted(new Set(fixtures.pushes.map((p) => String(p.ev)))));
  assert.deepEqual([...ERROR_CODES], fixtures.error_codes);
  assert.deepEqual([...ROLES], fixtures.roles);
  assert.deepEqual([...CLAIM_STATUSES], fixtures.claim_statuses);
  assert.deepEqual([...ACTIVITY_STATES], fixtures.activity_states);
  assert.deepEqual([...END_REASONS], fixtures.end_reasons);
  assert.deepEqual([...PRESENCE_STATES], fixtures.presence_states);
  assert.deepEqual([...RULE_KEYS], fixtures.rule_keys);
  assert.deepEqual({ ...CLOSE }, fixtures.close_codes);
  assert.equal(SUBPROTOCOL, fixtures.subprotocol);
});

test("every op's parameters and replies, as the Rust types serialize them, decode strictly with the same fields", () => {
  for (const [name, { params, ok }] of Object.entries(fixtures.ops)) {
    const op = OPS[name as OpName];
    assert.ok(params.length > 0 && ok.length > 0, `${name} has samples`);
    for (const p of params) {
      op.params.parse(p, `${name} params`, STRICT);
      // Rust serializes every field (an unset Option as null): the field sets must be equal.
      assert.deepEqual(shapeKeys(op.params), sorted(Object.keys(p)), `${name} params fields`);
    }
    for (const o of ok) {
      op.ok.parse(o, `${name} ok`, STRICT);
      assert.deepEqual(shapeKeys(op.ok), sorted(Object.keys(o)), `${name} reply fields`);
      // And as a whole reply frame.
      const frame = parseServerFrame(JSON.stringify({ re: 1, ok: o }), STRICT);
      assert.equal(frame.kind, "reply");
    }
  }
});

test("error replies decode strictly, the server's retry hint included; the close reason's hint parses", () => {
  const hints = fixtures.error_replies.map((e) => {
    const frame = parseServerFrame(JSON.stringify(e), STRICT);
    assert.ok(frame.kind === "reply" && frame.error, JSON.stringify(e));
    return frame.error.retry_after_ms;
  });
  assert.deepEqual(hints, [undefined, 2300]);
  assert.equal(closeReasonHint(fixtures.retry_close_reason), 2300);
});

test("every push, as the Rust types serialize it, decodes strictly with the same fields", () => {
  for (const p of fixtures.pushes) {
    const frame = parseServerFrame(JSON.stringify(p), STRICT);
    assert.equal(frame.kind, "push", JSON.stringify(p));
    const schema = PUSHES[p.ev as keyof typeof PUSHES];
    assert.deepEqual([...shapeKeys(schema), "ev"].sort(), sorted(Object.keys(p)), `${String(p.ev)} fields`);
  }
});

/** Every JSON value in the README's ```json blocks and in inline code spans. */
function readmeExamples(): unknown[] {
  const out: unknown[] = [];
  for (const block of readme.matchAll(/```json\n([\s\S]*?)```/g)) {
    const text = block[1]!;
    // Values may span lines (room.join's reply): split on top-level braces.
    let depth = 0;
    let start = -1;
    let inString = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        if (c === "\\") i++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === "{") {
        if (depth++ === 0) start = i;
      } else if (c === "}" && --depth === 0) {
        out.push(JSON.parse(text.slice(start, i + 1)));
      }
    }
  }
  for (const span of readme.matchAll(/`(\{[^`]*\})`/g)) {
    if (span[1]!.includes("<")) continue; // a placeholder such as `[<post>...]`
    try {
      out.push(JSON.parse(span[1]!));
    } catch {
      // prose in backticks that only looks like JSON, e.g. `{room_id}`
    }
  }
  return out;
}

test("every JSON example in protocol/README.md decodes strictly", () => {
  const requestOps = new Set<string>();
  const replyOps = new Set<string>();
  const pushes = new Set<string>();
  let posts = 0;
  const opOfId = new Map<number, OpName>();
  for (const value of readmeExamples()) {
    const v = value as Record<string, unknown>;
    if (typeof v.op === "string") {
      const op = v.op as OpName;
      assert.ok(op in OPS, `README request op ${op} is known to the SDK`);
      const { id: _id, op: _op, ...params } = v;
      OPS[op].params.parse(params, `README ${op} request`, STRICT);
      opOfId.set(v.id as number, op);
      requestOps.add(op);
    } else if ("re" in v) {
      const frame = parseServerFrame(JSON.stringify(v), STRICT);
      assert.equal(frame.kind, "reply");
      const op = opOfId.get(v.re as number);
      if (frame.kind === "reply" && frame.ok !== undefined && op) {
        OPS[op].ok.parse(frame.ok, `README ${op} reply`, STRICT);
        replyOps.add(op);
      }
    } else if (typeof v.ev === "string") {
      const frame = parseServerFrame(JSON.stringify(v), STRICT);
      assert.equal(frame.kind, "push");
      pushes.add(v.ev);
    } else if ("post_id" in v) {
      postSchema.parse(v, "README post", STRICT);
      posts++;
    }
  }
  // The README shows every op and push; only two replies are shown as placeholders.
  assert.deepEqual(sorted(requestOps), sorted(Object.keys(OPS)));
  assert.deepEqual(sorted(pushes), sorted(Object.keys(PUSHES)));
  const shownAsPlaceholder = ["feed.profile", "feed.timeline"];
  assert.deepEqual(sorted(replyOps), sorted(Object.keys(OPS).filter((op) => !shownAsPlaceholder.includes(op))));
  assert.ok(posts >= 1);
});
