//! The SDK against a real `corral` node (the binary `cargo build` made), over loopback: every
//! frame the node sends is decoded strictly; chat survives a SIGTERM drain and a SIGKILL crash
//! with no message lost or repeated; a claim whose reply is lost is retried across a crash and
//! restart and yields one hold; the countdown opens claims at `starts_at`.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import { CorralClient, type ConnectionState, type StateDetail } from "../client.js";
import { countdown } from "../countdown.js";
import { CorralError } from "../errors.js";
import type { WebSocketCtor } from "../socket.js";
import type { ChatMessage, PushName } from "../wire.js";
import { apiAs, CorralNode, LossyProxy, newPromotion, newRoom, newUser, sleep, waitFor, type Account } from "./harness.js";

let node: CorralNode;
const clients: CorralClient[] = [];
const frameErrors: CorralError[] = [];

before(async () => {
  // A small catch-up window, so a client that was away for more than 8 messages gets a
  // truncated re-join and must page back through `room.history`.
  node = await CorralNode.start({ env: { CORRAL_CHAT__CATCH_UP_WINDOW: "8" } });
});

after(async () => {
  for (const c of clients) c.close();
  await node?.dispose();
});

/** An SDK client for `account` with strict frame decoding; every decoding error is recorded. */
function sdk(account: Account, url = node.wsUrl, ctor: WebSocketCtor = WebSocket): CorralClient {
  const client = new CorralClient({
    url,
    token: () => account.token,
    WebSocket: ctor,
    strictFrames: true,
    backoff: { baseMs: 100, maxMs: 1_000 },
    requestTimeoutMs: 5_000,
  });
  client.onError((e) => frameErrors.push(e));
  clients.push(client);
  return client;
}

/** The `ws` WebSocket, recording the op of every request sent through it. */
function recordingOps(ops: string[]): WebSocketCtor {
  return function (url: string, protocols?: string | string[]) {
    const ws = new WebSocket(url, protocols);
    const send = ws.send.bind(ws);
    (ws as unknown as { send(data: string): void }).send = (data: string) => {
      ops.push(String((JSON.parse(data) as { op: unknown }).op));
      send(data);
    };
    return ws;
  } as unknown as WebSocketCtor;
}

function recordStates(client: CorralClient): [ConnectionState, StateDetail][] {
  const states: [ConnectionState, StateDetail][] = [];
  client.onState((s, d) => states.push([s, d]));
  return states;
}

/**
 * Two users chat while the node is stopped with `signal` and started again. The sender sends
 * one message at a time (each `room.send` retried by the SDK with its key until acknowledged);
 * the receiver must end up with seq 1..n exactly once each, in order, and the room's stored
 * history must hold each logical send exactly once.
 */
async function chatAcrossRestart(signal: "SIGTERM" | "SIGKILL") {
  const alice = await newUser(node);
  const bob = await newUser(node);
  const roomId = await newRoom(node, alice);
  const sender = sdk(alice);
  const receiver = sdk(bob);
  await Promise.all([sender.connect(), receiver.connect()]);
  const received: ChatMessage[] = [];
  const pushes: PushName[] = [];
  receiver.on("server.going_away", (p) => pushes.push(p.ev));
  const receiverStates = recordStates(receiver);
  const sendRoom = await sender.joinRoom(roomId);
  await receiver.joinRoom(roomId, { onMessage: (m) => received.push(m) });

  const acked: { text: string; seq: number }[] = [];
  let sending = true;
  const loop = (async () => {
    for (let i = 0; sending; i++) {
      const text = `${signal} message ${i}`;
      const { seq } = await sendRoom.send(text);
      acked.push({ text, seq });
      await sleep(5);
    }
  })();

  await waitFor(() => acked.length >= 30, 10_000, "30 messages before the stop");
  await node.stop(signal);
  const stoppedAt = acked.length;
  await sleep(300); // the sender's next send is now retrying against a dead node
  await node.restart();
  await waitFor(() => acked.length >= stoppedAt + 30, 30_000, "30 messages after the restart");
  sending = false;
  await loop;
  const last = acked[acked.length - 1]!.seq;
  await waitFor(() => (receiver.rooms.get(roomId)?.lastSeq ?? 0) >= last, 15_000, "the receiver to catch up");

  // The receiver: every seq once, in order, and exactly the acknowledged texts.
  assert.deepEqual(
    received.map((m) => m.seq),
    Array.from({ length: last }, (_, i) => i + 1),
  );
  assert.deepEqual(
    received.map((m) => m.text),
    acked.map((a) => a.text),
  );
  assert.deepEqual(
    acked.map((a) => a.seq),
    Array.from({ length: acked.length }, (_, i) => i + 1),
    "each logical send got its own seq, the next one",
  );
  // The store: each logical send exactly once (a retried key stored nothing new).
  const stored = await receiver.request("room.history", { room: roomId, limit: 200 });
  assert.deepEqual(
    stored.messages.map((m) => m.text),
    acked.map((a) => a.text),
  );
  // The receiver went through a reconnect, for the reason the signal implies.
  const reconnecting = receiverStates.filter(([s]) => s === "reconnecting").map(([, d]) => d);
  assert.ok(reconnecting.length >= 1, "the receiver reconnected");
  if (signal === "SIGTERM") {
    assert.deepEqual(pushes, ["server.going_away"]);
    assert.equal(reconnecting[0]!.closeCode, 1001);
    assert.ok(reconnecting[0]!.delayMs! <= 1_000, "waited the node's reconnect_after_ms (jitter up to 1 s)");
  } else {
    assert.deepEqual(pushes, []);
    assert.equal(reconnecting[0]!.closeCode, 1006);
  }
  sender.close();
  receiver.close();
}

test("SIGTERM: the SDK honours server.going_away, re-joins with since, loses and repeats nothing", async () => {
  await chatAcrossRestart("SIGTERM");
});

test("SIGKILL: the SDK backs off, re-joins with since, loses and repeats nothing", async () => {
  await chatAcrossRestart("SIGKILL");
});

test("a client away for longer than the catch-up window pages back through history: nothing lost", async () => {
  const alice = await newUser(node);
  const bob = await newUser(node);
  const roomId = await newRoom(node, alice);
  const proxy = await LossyProxy.start(() => node.port);
  try {
    const sender = sdk(alice);
    const ops: string[] = [];
    const receiver = sdk(bob, proxy.wsUrl, recordingOps(ops));
    await Promise.all([sender.connect(), receiver.connect()]);
    const seqs: number[] = [];
    const sendRoom = await sender.joinRoom(roomId);
    await receiver.joinRoom(roomId, { onMessage: (m) => seqs.push(m.seq) });
    await sendRoom.send("before");
    await waitFor(() => seqs.length === 1, 5_000, "the first message");
    proxy.setDown(true);
    await waitFor(() => receiver.state === "reconnecting", 5_000, "the outage to be noticed");
    for (let i = 0; i < 30; i++) await sendRoom.send(`while away ${i}`);
    assert.equal(ops.filter((op) => op === "room.history").length, 0);
    proxy.setDown(false);
    await waitFor(() => seqs.length === 31, 20_000, "the catch-up");
    assert.deepEqual(seqs, Array.from({ length: 31 }, (_, i) => i + 1));
    // The re-join was truncated (30 missed, a window of 8): the rest came from history.
    assert.ok(ops.filter((op) => op === "room.history").length >= 1, `ops: ${ops.join(",")}`);
    sender.close();
    receiver.close();
  } finally {
    await proxy.close();
  }
});

test("a claim whose reply is lost is retried with its key across a node crash and restart: one hold", async () => {
  const promo = await newPromotion(node, { startsInMs: 1_500, slots: 5, perUserLimit: 2 });
  const buyer = await newUser(node);
  const proxy = await LossyProxy.start(() => node.port);
  try {
    const client = sdk(buyer, proxy.wsUrl);
    const states = recordStates(client);
    await client.connect();
    const watch = await client.watchActivity(promo.activityId);
    await waitFor(() => client.clock.now() >= watch.startsAt + 50, 10_000, "the start");
    // The node takes the hold; its reply never reaches us, and the node dies at that instant,
    // before the SDK's retry can reach it.
    proxy.loseReplyContaining('"claim_id"', () => node.signal("SIGKILL"));
    const claim = client.claim(promo.activityId);
    await waitFor(() => proxy.lost === 1, 10_000, "the lost reply");
    await node.stop("SIGKILL");
    await node.restart();
    const hold = await claim;
    assert.equal(hold.status, "held");
    assert.ok(states.some(([s]) => s === "reconnecting"), "the claim was retried after a reconnect");

    const merchantApi = apiAs(node, promo.merchant);
    const listed = await merchantApi.get<{ claims: { claim_id: number; user_id: number; status: string }[]; summary: { held: number } }>(
      `/api/v1/activities/${promo.activityId}/claims`,
    );
    const mine = listed.claims.filter((c) => c.user_id === buyer.userId);
    assert.deepEqual(
      mine.map((c) => [c.claim_id, c.status]),
      [[hold.claim_id, "held"]],
    );
    assert.equal(listed.summary.held, 1);
    // The same key again (another device, a later retry): still that one claim.
    const again = await client.claim(promo.activityId, { key: hold.key });
    assert.equal(again.claim_id, hold.claim_id);
    client.close();
  } finally {
    await proxy.close();
  }
});

test("the countdown opens at starts_at on the synced clock; a claim sent then is held", async () => {
  const promo = await newPromotion(node, { startsInMs: 4_000, slots: 3 });
  const buyer = await newUser(node);
  const client = sdk(buyer);
  await client.connect();
  await waitFor(() => client.clock.synced, 5_000, "clock sync");
  const started: number[] = [];
  client.on("activity.started", () => started.push(client.clock.now()));
  const updates: string[] = [];
  client.on("claim.updated", (c) => updates.push(c.status));
  const broadcasts: string[] = [];
  const watch = await client.watchActivity(promo.activityId, { onBroadcast: (b) => broadcasts.push(b.text) });
  assert.equal(watch.state, "scheduled");
  await apiAs(node, promo.merchant).post(`/api/v1/activities/${promo.activityId}/broadcast`, { text: "Calves at noon!" });
  await waitFor(() => broadcasts.length === 1, 5_000, "activity.broadcast");
  assert.deepEqual(broadcasts, ["Calves at noon!"]);
  // (Tick cadence is a unit test's business: on a loaded machine the set-up above may eat
  // most of the lead time.)
  const openedAt = await new Promise<number>((resolve) => {
    countdown(watch.startsAt, client.clock, { onOpen: () => resolve(client.clock.now()) });
  });
  assert.ok(openedAt >= watch.startsAt);
  const hold = await client.claim(promo.activityId);
  assert.equal(hold.status, "held");
  await waitFor(() => watch.state === "live", 5_000, "activity.started");
  assert.equal(started.length, 1);
  await waitFor(() => watch.stockLeft === 2, 5_000, "activity.stock");
  const cancelled = await client.cancelClaim(hold.claim_id);
  assert.equal(cancelled.status, "cancelled");
  await waitFor(() => updates.includes("cancelled"), 5_000, "claim.updated");
  client.close();
});

test("feeds, follows, DMs and presence: every frame the node sends fits the SDK's types", async () => {
  const alice = await newUser(node);
  const bob = await newUser(node);
  const a = sdk(alice);
  const b = sdk(bob);
  await Promise.all([a.connect(), b.connect()]);
  const seen = new Set<PushName>();
  for (const ev of ["feed.post", "feed.liked", "feed.commented", "room.message", "presence"] as const) {
    a.on(ev, () => seen.add(ev));
    b.on(ev, () => seen.add(ev));
  }
  await b.follow(alice.userId);
  const posted = await a.post("Morning at the farm", { media: ["https://cdn.example/a.jpg"] });
  await waitFor(() => seen.has("feed.post"), 5_000, "feed.post");
  await b.like(posted.post_id);
  await b.comment(posted.post_id, "So cute!");
  await waitFor(() => seen.has("feed.liked") && seen.has("feed.commented"), 5_000, "likes and comments");
  const page = await b.timeline({ limit: 10 });
  assert.equal(page.posts[0]?.post_id, posted.post_id);
  assert.equal(page.next_before ?? null, null);
  const dm = await a.sendDm(bob.userId, "psst");
  await waitFor(() => seen.has("room.message"), 5_000, "the DM");
  const dmRoom = await b.joinRoom(dm.room);
  assert.equal(dmRoom.lastSeq, 1);
  const roomId = await newRoom(node, alice, "porch");
  await a.joinRoom(roomId);
  await b.joinRoom(roomId);
  await waitFor(() => seen.has("presence"), 5_000, "presence");
  await assert.rejects(b.request("feed.delete", { post: posted.post_id }), (e: unknown) => e instanceof CorralError && e.code === "forbidden");
  await b.unfollow(alice.userId);
  await a.deletePost(posted.post_id);
  a.close();
  b.close();
  assert.deepEqual(frameErrors, [], "no frame from the node failed strict decoding");
});
