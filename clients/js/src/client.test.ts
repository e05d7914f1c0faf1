//! Unit tests of `CorralClient` against an in-process fake node: request matching, auth,
//! reconnect policy, clock sync, idempotent retries.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { ClientOptions, ConnectionState, StateDetail } from "./client.js";
import { CorralError } from "./errors.js";
import { FakeServer, until } from "./testing/fake-server.js";

function setup(options: Partial<ClientOptions> = {}) {
  const server = new FakeServer();
  const client = server.client({ token: "t0", backoff: { baseMs: 20, maxMs: 200 }, random: () => 0.5, clockSamples: 3, ...options });
  const states: [ConnectionState, StateDetail][] = [];
  client.onState((s, d) => states.push([s, d]));
  return { server, client, states };
}

test("connect authenticates with the token and the corral.v1 subprotocol, then syncs the clock", async () => {
  const { server, client, states } = setup();
  server.offsetMs = 7_000;
  const auth = await client.connect();
  assert.deepEqual([auth.user_id, auth.role], [1, "user"]);
  assert.equal(server.last.protocols, "corral.v1");
  assert.equal(server.ops("auth")[0]?.token, "t0");
  assert.deepEqual(
    states.map(([s]) => s),
    ["connecting", "open"],
  );
  await until(() => client.clock.synced, 2000, "clock sync");
  assert.equal(server.ops("time.sync").length, 3);
  assert.ok(Math.abs(client.clock.now() - (Date.now() + 7_000)) < 50, `offset ${client.clock.offsetMs}`);
  client.close();
  assert.equal(client.state, "closed");
});

test("replies are matched by id whatever their order, with pushes in between", async () => {
  const { server, client } = setup();
  await client.connect();
  server.handler = (req) => (req.op === "follow" ? undefined : "default");
  const a = client.request("follow", { user: 10 });
  const b = client.request("follow", { user: 11 });
  await until(() => server.ops("follow").length === 2);
  const [ra, rb] = server.ops("follow");
  const pushes: number[] = [];
  client.on("feed.liked", (p) => pushes.push(p.post));
  server.last.answer(rb!.id, { error: { code: "not_found", message: "no such user" } });
  server.last.frame({ ev: "feed.liked", post: 5, by: 2 });
  server.last.answer(ra!.id, { ok: {} });
  assert.deepEqual(await a, {});
  await assert.rejects(b, (e: unknown) => e instanceof CorralError && e.code === "not_found" && !e.retryable);
  assert.deepEqual(pushes, [5]);
  client.close();
});

test("a request without a reply times out; the late reply is ignored", async () => {
  const { server, client } = setup({ requestTimeoutMs: 50 });
  await client.connect();
  server.handler = (req) => (req.op === "feed.like" ? undefined : "default");
  const errors: CorralError[] = [];
  client.onError((e) => errors.push(e));
  await assert.rejects(client.request("feed.like", { post: 1 }), (e: unknown) => e instanceof CorralError && e.code === "timeout");
  server.last.answer(server.ops("feed.like")[0]!.id, { ok: { likes: 1, changed: true } });
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(errors, []);
  client.close();
});

test("a reply that does not fit the op's type is rejected as a protocol error", async () => {
  const { server, client } = setup();
  await client.connect();
  server.handler = (req) => (req.op === "room.send" ? { ok: { seq: "7", ts: 1 } } : "default");
  await assert.rejects(
    client.request("room.send", { room: 1, text: "x", client_msg_id: "k" }),
    (e: unknown) => e instanceof CorralError && e.code === "protocol" && /seq/.test(e.message),
  );
  client.close();
});

test("a refused token stops the client: connect rejects, no reconnect", async () => {
  const { server, client, states } = setup();
  server.handler = (req) => (req.op === "auth" ? { error: { code: "unauthenticated", message: "bad token" } } : "default");
  await assert.rejects(client.connect(), (e: unknown) => e instanceof CorralError && e.code === "unauthenticated");
  assert.equal(client.state, "closed");
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(server.sockets.length, 1);
  assert.equal(states.at(-1)?.[1].error?.code, "unauthenticated");
});

test("close code 1008 stops reconnecting", async () => {
  const { server, client } = setup();
  await client.connect();
  server.last.drop(1008, "too many connections");
  await until(() => client.state === "closed");
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(server.sockets.length, 1);
});

test("server.going_away: reconnect after exactly the server's delay, re-auth with a fresh token", async () => {
  let n = 0;
  const { server, client, states } = setup({ token: () => `t${n++}` });
  await client.connect();
  const t = Date.now();
  server.last.frame({ ev: "server.going_away", reconnect_after_ms: 150 });
  server.last.drop(1001);
  await until(() => server.sockets.length === 2 && client.state === "open", 2000, "reconnect");
  assert.ok(Date.now() - t >= 145, `reconnected after ${Date.now() - t} ms`);
  const rec = states.find(([s]) => s === "reconnecting");
  assert.equal(rec?.[1].delayMs, 150);
  assert.equal(rec?.[1].closeCode, 1001);
  assert.deepEqual(server.tokens, ["t0", "t1"]);
  client.close();
});

test("failed dials back off exponentially with jitter; 4008 starts higher", async () => {
  const { server, client, states } = setup({ random: () => 0 });
  await client.connect();
  server.accepting = false;
  server.last.drop(1006);
  await until(() => server.sockets.length >= 4, 3000, "three redials");
  const delays = states.filter(([s]) => s === "reconnecting").map(([, d]) => d.delayMs);
  // random = 0: each delay is half its ceiling, 20 * 2^attempt / 2.
  assert.deepEqual(delays.slice(0, 3), [10, 20, 40]);
  server.accepting = true;
  await until(() => client.state === "open");
  states.length = 0;
  server.last.drop(4008);
  await until(() => states.some(([s]) => s === "reconnecting"));
  // A slow consumer is not let straight back in: at least attempt 3 (20 * 8 / 2).
  assert.ok((states[0]?.[1].delayMs ?? 0) >= 80, `4008 delay ${states[0]?.[1].delayMs}`);
  client.close();
});

test("a close whose reason carries retry_after_ms reconnects no sooner than that", async () => {
  const { server, client, states } = setup({ random: () => 0 });
  await client.connect();
  server.last.drop(4008, '{"retry_after_ms":300}');
  await until(() => states.some(([s]) => s === "reconnecting"));
  // Backoff alone would say 80 ms (attempt 3); the server's 300 ms hint wins.
  assert.equal(states.find(([s]) => s === "reconnecting")?.[1].delayMs, 300);
  await until(() => client.state === "open");
  client.close();
});

test("an idempotent retry after an error with retry_after_ms waits at least that long", async () => {
  const { server, client } = setup();
  await client.connect();
  let refusals = 0;
  server.handler = (req) => {
    if (req.op !== "dm.send") return "default";
    if (refusals++ === 0) return { error: { code: "unavailable", message: "overloaded", retry_after_ms: 150 } };
    return { ok: { room: 9, seq: 1, ts: 1 } };
  };
  const started = Date.now();
  await client.sendDm(2, "hi");
  const waited = Date.now() - started;
  assert.equal(server.ops("dm.send").length, 2);
  assert.ok(waited >= 150, `retried after ${waited} ms`);
  client.close();
});

test("requests made while reconnecting wait for the connection; those in flight fail as disconnected", async () => {
  const { server, client } = setup();
  await client.connect();
  server.handler = (req) => (req.op === "follow" ? undefined : "default");
  const inFlight = client.request("follow", { user: 1 });
  await until(() => server.ops("follow").length === 1);
  server.last.drop(1006);
  await assert.rejects(inFlight, (e: unknown) => e instanceof CorralError && e.code === "disconnected" && e.retryable);
  server.handler = (req) => (req.op === "unfollow" ? { ok: {} } : "default");
  assert.deepEqual(await client.request("unfollow", { user: 1 }), {});
  assert.equal(server.sockets.length, 2);
  client.close();
  await assert.rejects(client.request("unfollow", { user: 1 }), (e: unknown) => e instanceof CorralError && e.code === "closed");
});

test("the clock keeps the lowest-round-trip sample of a round", async () => {
  const { server, client } = setup({ clockSamples: 4 });
  // The server's clock is 5 s ahead; every reply but the third is slow and asymmetric (the
  // server read its clock early, then the reply sat 80 ms), which would skew the offset.
  server.offsetMs = 5_000;
  let k = 0;
  server.handler = (req, socket) => {
    if (req.op !== "time.sync") return "default";
    const body = { client_time: req.client_time as number, server_time: Date.now() + 5_000 };
    setTimeout(() => socket.answer(req.id, { ok: body }), k++ === 2 ? 0 : 80);
    return undefined;
  };
  await client.connect();
  await until(() => client.clock.synced, 3000);
  assert.ok(client.clock.rttMs < 40, `rtt ${client.clock.rttMs}`);
  assert.ok(Math.abs(client.clock.offsetMs - 5_000) < 20, `offset ${client.clock.offsetMs}`);
  client.close();
});

test("a silent socket is detected by the keepalive and replaced", async () => {
  const { server, client } = setup({ keepaliveMs: 1_000, requestTimeoutMs: 300 });
  await client.connect();
  await until(() => client.clock.synced);
  server.handler = (req) => (req.op === "time.sync" ? undefined : "default"); // a dead peer
  await until(() => server.sockets.length === 2, 4000, "a new socket");
  client.close();
});

test("frames with unknown fields are reported in strict mode", async () => {
  const { server, client } = setup();
  await client.connect();
  const errors: CorralError[] = [];
  client.onError((e) => errors.push(e));
  server.last.frame({ ev: "feed.liked", post: 1, by: 2, surprise: 3 });
  server.last.frame({ ev: "feed.nope" });
  assert.equal(errors.length, 2);
  assert.ok(errors.every((e) => e.code === "protocol"));
  client.close();
});
