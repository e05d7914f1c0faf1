//! Unit tests of activity watches and claims against a fake node: re-subscription, idempotent
//! claim keys across `unavailable` and reconnects, `not_started` near the start instant, and
//! eligibility from the subscribe reply and `activity.eligibility`.

import assert from "node:assert/strict";
import { test } from "node:test";
import { CorralError } from "./errors.js";
import { FakeServer, until, type Req } from "./testing/fake-server.js";

function subscribeOk(req: Req, startsAt: number, state = "scheduled") {
  return {
    ok: { activity: req.activity as number, state, starts_at: startsAt, ends_at: startsAt + 60_000, stock_left: 5, server_time: Date.now(), eligible: true, unmet: [] },
  };
}

async function connected(server: FakeServer) {
  const client = server.client();
  await client.connect();
  await until(() => client.clock.synced);
  return client;
}

test("a watch knows whether its user may claim, and learns when that changes", async () => {
  const server = new FakeServer();
  const startsAt = Date.now() + 30_000;
  const unmet = [{ rule: "followers_only" }, { rule: "posts", need: 3, have: 1 }];
  server.handler = (req) => {
    if (req.op !== "activity.subscribe") return "default";
    const reply = subscribeOk(req, startsAt);
    return { ok: { ...reply.ok, eligible: false, unmet } };
  };
  const client = await connected(server);
  const seen: boolean[] = [];
  const watch = await client.watchActivity(7, { onChange: (w) => seen.push(w.eligible) });
  assert.equal(watch.eligible, false);
  assert.deepEqual(watch.unmet, unmet);
  server.last.frame({ ev: "activity.eligibility", activity: 7, eligible: true, unmet: [] });
  assert.equal(watch.eligible, true);
  assert.deepEqual(watch.unmet, []);
  assert.deepEqual(seen, [false, true]);
  server.last.frame({ ev: "activity.eligibility", activity: 8, eligible: false, unmet });
  assert.equal(watch.eligible, true, "another activity's push is not this watch's");
  client.close();
});

test("a watch follows pushes and is re-subscribed after a reconnect until the activity ends", async () => {
  const server = new FakeServer();
  const startsAt = Date.now() + 30_000;
  server.handler = (req) => (req.op === "activity.subscribe" ? subscribeOk(req, startsAt) : "default");
  const client = await connected(server);
  const changes: string[] = [];
  const watch = await client.watchActivity(7, { onChange: (w) => changes.push(`${w.state}/${w.stockLeft}`) });
  assert.equal(watch.startsAt, startsAt);
  assert.equal(watch.open, false);
  server.last.frame({ ev: "activity.stock", activity: 7, left: 4 });
  server.last.frame({ ev: "activity.started", activity: 7, server_time: startsAt });
  assert.deepEqual(changes, ["scheduled/5", "scheduled/4", "live/4"]);

  server.last.drop(1006);
  await until(() => server.ops("activity.subscribe").length === 2, 2000, "re-subscribe");
  await until(() => changes.length === 4);
  assert.equal(changes[3], "scheduled/5", "the reply re-anchors the state");

  server.last.frame({ ev: "activity.ended", activity: 7, reason: "sold_out", server_time: startsAt + 5 });
  assert.equal(watch.state, "ended");
  assert.equal(watch.endReason, "sold_out");
  assert.equal(client.watches.size, 0);
  server.last.drop(1006);
  await until(() => server.sockets.length === 3 && client.state === "open");
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(server.ops("activity.subscribe").length, 2, "an ended activity is not re-subscribed");
  client.close();
});

test("a countdown tick that disagrees with the synced clock triggers a re-sync", async () => {
  const server = new FakeServer();
  const startsAt = Date.now() + 30_000;
  server.handler = (req) => (req.op === "activity.subscribe" ? subscribeOk(req, startsAt) : "default");
  const client = await connected(server);
  await client.watchActivity(7);
  const syncs = server.ops("time.sync").length;
  // The tick for k = 30 is sent at starts_at - 30 s, which is now: it agrees.
  server.last.frame({ ev: "activity.countdown", activity: 7, seconds_left: 30, server_time: Date.now() });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(server.ops("time.sync").length, syncs);
  // A tick for k = 20 now means our estimate is ~10 s off.
  server.last.frame({ ev: "activity.countdown", activity: 7, seconds_left: 20, server_time: Date.now() });
  await until(() => server.ops("time.sync").length > syncs, 1000, "re-sync");
  client.close();
});

test("claim keeps one key across `unavailable` and a reconnect: the node holds one claim", async () => {
  const server = new FakeServer();
  const holds = new Map<string, number>();
  let unavailable = 2;
  let dropOnce = true;
  server.handler = (req, socket) => {
    if (req.op !== "claim") return "default";
    if (unavailable > 0) {
      unavailable--;
      return { error: { code: "unavailable", message: "storage down" } };
    }
    const key = req.key as string;
    if (!holds.has(key)) holds.set(key, 900 + holds.size);
    if (dropOnce) {
      dropOnce = false; // the hold is durable, but its reply is lost with the socket
      socket.drop(1006);
      return undefined;
    }
    return { ok: { claim_id: holds.get(key)!, item: 31, status: "held", expires_at: 1 } };
  };
  const client = await connected(server);
  const hold = await client.claim(12, { item: 31 });
  assert.equal(hold.status, "held");
  assert.equal(hold.claim_id, 900);
  const keys = server.ops("claim").map((r) => r.key);
  assert.equal(keys.length, 4);
  assert.equal(new Set(keys).size, 1);
  assert.equal(keys[0], hold.key);
  assert.equal(holds.size, 1);
  client.close();
});

test("claim retries `not_started` at the watched start, and not other refusals", async () => {
  const server = new FakeServer();
  const startsAt = Date.now() + 120;
  server.handler = (req) => {
    if (req.op === "activity.subscribe") return subscribeOk(req, startsAt);
    if (req.op !== "claim") return "default";
    if (Date.now() < startsAt) return { error: { code: "not_started", message: "not yet" } };
    return req.activity === 12
      ? { ok: { claim_id: 1, item: 31, status: "held", expires_at: 1 } }
      : { error: { code: "sold_out", message: "none left" } };
  };
  const client = await connected(server);
  await client.watchActivity(12);
  const hold = await client.claim(12); // sent early: refused once, then retried at the start
  assert.equal(hold.status, "held");
  const claims = server.ops("claim");
  assert.equal(claims.length, 2);
  assert.equal(claims[0]!.key, claims[1]!.key);
  assert.equal("item" in claims[0]!, false, "no item: any available one");
  await assert.rejects(client.claim(13), (e: unknown) => e instanceof CorralError && e.code === "sold_out");
  assert.equal(server.ops("claim").length, 3);
  client.close();
});
