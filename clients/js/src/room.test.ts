//! Unit tests of rooms across reconnects, against a fake node that keeps a room's log the way
//! Corral does (gap-free seq, catch-up window, idempotent `client_msg_id`).

import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import type { ClientOptions } from "./client.js";
import { CorralError } from "./errors.js";
import { FakeServer, until, type FakeSocket, type Req } from "./testing/fake-server.js";
import type { ChatMessage } from "./wire.js";

/** One room's log, served like Corral serves it. */
class FakeRoom {
  readonly log: ChatMessage[] = [];
  readonly keys = new Map<string, ChatMessage>();
  readonly members = new Set<FakeSocket>();
  window = 500;
  epoch = 1_000;
  /** Drop the socket instead of answering the next `room.send` (after storing it). */
  loseNextSendReply = false;
  /** Answer the next n `room.send`s with `unavailable` (storing nothing). */
  unavailable = 0;
  /** The `retry_after_ms` those `unavailable` answers carry, if any. */
  retryAfterMs: number | undefined = undefined;

  constructor(readonly id: number) {}

  append(text: string, from = 2, key = `srv-${this.log.length + 1}`): ChatMessage {
    const m = { room: this.id, seq: this.log.length + 1, from, text, ts: 1_700_000_000_000 + this.log.length, client_msg_id: key };
    this.log.push(m);
    this.keys.set(key, m);
    for (const s of this.members) s.frame({ ev: "room.message", ...m });
    return m;
  }

  handle(req: Req, socket: FakeSocket) {
    switch (req.op) {
      case "room.join": {
        this.members.add(socket);
        const since = req.since as number | undefined;
        const last = this.log.length;
        const after = since === undefined ? [] : this.log.filter((m) => m.seq > since);
        const missed = after.slice(-this.window);
        const truncated = missed.length < after.length;
        const caught_up = !truncated && (since === undefined || since <= last);
        return { ok: { room: this.id, last_seq: last, epoch: this.epoch, missed, truncated, caught_up, online: [1], online_count: 1 } };
      }
      case "room.history": {
        const before = (req.before_seq as number | undefined) ?? Infinity;
        const older = this.log.filter((m) => m.seq < before);
        return { ok: { messages: older.slice(-(req.limit as number)) } };
      }
      case "room.send": {
        if (this.unavailable > 0) {
          this.unavailable--;
          return { error: { code: "unavailable", message: "store down", retry_after_ms: this.retryAfterMs } };
        }
        const key = req.client_msg_id as string;
        const m = this.keys.get(key) ?? this.append(req.text as string, 1, key);
        if (this.loseNextSendReply) {
          this.loseNextSendReply = false;
          socket.drop(1006);
          return undefined;
        }
        return { ok: { seq: m.seq, ts: m.ts } };
      }
      case "room.leave":
        this.members.delete(socket);
        return { ok: {} };
      default:
        return "default" as const;
    }
  }
}

async function setup(onReset?: () => void) {
  const server = new FakeServer();
  const room = new FakeRoom(12);
  server.handler = (req, socket) => room.handle(req, socket);
  const client = server.client();
  await client.connect();
  const seen: number[] = [];
  const joined = await client.joinRoom(12, { onMessage: (m) => seen.push(m.seq), ...(onReset ? { onReset } : {}) });
  return { server, room, client, joined, seen };
}

/** Drops the socket, lets `during` happen while the client is away, and waits for the re-join. */
async function outage(server: FakeServer, room: FakeRoom, during: () => void) {
  const before = server.ops("room.join").length;
  room.members.clear();
  server.last.drop(1006);
  during();
  await until(() => server.ops("room.join").length > before, 2000, "re-join");
}

test("messages sent while the client was away arrive once, in order, via room.join since", async () => {
  const { server, room, client, joined, seen } = await setup();
  room.append("a");
  room.append("b");
  await until(() => seen.length === 2);
  await outage(server, room, () => {
    room.append("c");
    room.append("d");
  });
  await until(() => seen.length === 4);
  assert.equal(server.ops("room.join").at(-1)?.since, 2);
  room.append("e");
  await until(() => seen.length === 5);
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
  assert.deepEqual(joined.messages.map((m) => m.text), ["a", "b", "c", "d", "e"]);
  client.close();
});

test("a truncated catch-up pages back through room.history: nothing lost, nothing repeated", async () => {
  const { server, room, client, seen } = await setup();
  room.window = 3;
  room.append("first");
  await until(() => seen.length === 1);
  await outage(server, room, () => {
    for (let i = 0; i < 450; i++) room.append(`m${i}`);
  });
  await until(() => seen.length === 451, 3000, "catch-up");
  assert.deepEqual(seen, Array.from({ length: 451 }, (_, i) => i + 1));
  assert.ok(server.ops("room.history").length >= 3, "paged in pages of at most 200");
  client.close();
});

test("pushes racing ahead of the re-join reply are neither lost nor repeated", async () => {
  const { server, room, client, seen } = await setup();
  room.append("a");
  await until(() => seen.length === 1);
  // A private room's member gets pushes on the new socket before its join reply.
  server.handler = (req, socket) => {
    if (req.op === "room.join" && req.since !== undefined) {
      room.members.add(socket);
      room.append("racing"); // seq 3, pushed now, also part of the reply's `missed`
      room.append("racing too"); // seq 4
    }
    return room.handle(req, socket);
  };
  await outage(server, room, () => room.append("missed")); // seq 2
  await until(() => seen.length === 4);
  room.append("live");
  await until(() => seen.length === 5);
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
  client.close();
});

test("a new epoch (history reset on the server) resets the room instead of reporting a gap", async () => {
  let resets = 0;
  const { server, room, client, joined } = await setup(() => resets++);
  room.append("a");
  room.append("b");
  await until(() => joined.lastSeq === 2);
  assert.equal(await client.joinRoom(12), joined, "joining twice returns the same room");
  await outage(server, room, () => {
    room.log.length = 0;
    room.keys.clear();
    room.epoch = 2_000;
    room.append("new world");
  });
  await until(() => resets === 1);
  assert.equal(joined.lastSeq, 1);
  assert.equal(joined.epoch, 2_000);
  assert.deepEqual(joined.messages, []);
  client.close();
});

test("room.send keeps its client_msg_id across `unavailable` and a lost reply: stored once", async () => {
  const { server, room, client, seen } = await setup();
  room.unavailable = 2;
  const first = await client.rooms.get(12)!.send("hello");
  assert.equal(first.seq, 1);
  const keys = server.ops("room.send").map((r) => r.client_msg_id);
  assert.equal(keys.length, 3);
  assert.equal(new Set(keys).size, 1);

  room.loseNextSendReply = true; // stored, then the socket drops before the reply
  const second = await client.rooms.get(12)!.send("again");
  const keys2 = server.ops("room.send").slice(3).map((r) => r.client_msg_id);
  assert.equal(keys2.length, 2, "retried once after the reconnect");
  assert.equal(keys2[0], keys2[1]);
  assert.equal(second.seq, 2);
  assert.equal(room.log.length, 2, "one message stored per send");
  await until(() => seen.length === 2);
  assert.deepEqual(seen, [1, 2]);
  client.close();
});

test("room.send shed with retry_after_ms is retried no sooner than the hint", async () => {
  const { server, room, client } = await setup();
  room.unavailable = 1;
  room.retryAfterMs = 120;
  const started = Date.now();
  const sent = await client.rooms.get(12)!.send("later");
  const waited = Date.now() - started;
  assert.equal(sent.seq, 1);
  assert.equal(server.ops("room.send").length, 2);
  assert.ok(waited >= 120, `retried after ${waited} ms`);
  client.close();
});

test("a room left is not delivered nor re-joined after a reconnect", async () => {
  const { server, room, client, joined, seen } = await setup();
  await joined.leave();
  assert.equal(client.rooms.size, 0);
  room.append("after leave");
  const joins = server.ops("room.join").length;
  server.last.drop(1006);
  await until(() => client.state === "open" && server.sockets.length === 2);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(server.ops("room.join").length, joins);
  assert.deepEqual(seen, []);
  client.close();
});

test("joinRoom twice at once joins once; initialHistory loads the newest messages first", async () => {
  const server = new FakeServer();
  const room = new FakeRoom(12);
  for (const t of ["a", "b", "c", "d"]) room.append(t);
  server.handler = (req, socket) => room.handle(req, socket);
  const client = server.client();
  await client.connect();
  const [r1, r2] = await Promise.all([client.joinRoom(12, { initialHistory: 3 }), client.joinRoom(12)]);
  assert.equal(r1, r2);
  assert.equal(server.ops("room.join").length, 1);
  assert.deepEqual(r1.messages.map((m) => m.text), ["b", "c", "d"]);
  assert.equal(r1.lastSeq, 4);
  room.append("e");
  await until(() => r1.lastSeq === 5);
  assert.deepEqual(r1.messages.map((m) => m.seq), [2, 3, 4, 5]);
  client.close();
});

// --- re-joins paced by the server (room.join answered `unavailable` with a hint) ---

/** A joined room whose client has a 100 ms retry deadline and quick retry backoff. */
async function pacedSetup(t: TestContext, options: Partial<ClientOptions> = {}) {
  const server = new FakeServer();
  const room = new FakeRoom(12);
  server.handler = (req, socket) => room.handle(req, socket);
  const client = server.client({ retryDeadlineMs: 100, retryBackoff: { baseMs: 5, maxMs: 20 }, random: () => 0.5, ...options });
  // A held room re-joins for as long as its client is up: close it even when an assertion fails.
  t.after(() => client.close());
  await client.connect();
  const seen: number[] = [];
  const errors: CorralError[] = [];
  const joined = await client.joinRoom(12, { onMessage: (m) => seen.push(m.seq), onError: (e) => errors.push(e) });
  return { server, room, client, joined, seen, errors };
}

/**
 * From now on a re-join (`room.join` with `since`) is answered `unavailable` with a
 * `retry_after_ms` of `hintMs` while `paced()` holds, as a node pacing a crowd's joins does;
 * `times` gets each re-join's arrival.
 */
function pace(server: FakeServer, room: FakeRoom, hintMs: number, paced: () => boolean, times: number[] = []) {
  server.handler = (req, socket) => {
    if (req.op === "room.join" && req.since !== undefined) {
      times.push(Date.now());
      if (paced()) return { error: { code: "unavailable", message: "joins paced", retry_after_ms: hintMs } };
    }
    return room.handle(req, socket);
  };
}

const rejoinReqs = (server: FakeServer) => server.ops("room.join").filter((r) => r.since !== undefined);
const rejoins = (server: FakeServer) => rejoinReqs(server).length;
const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("a re-join paced past the retry deadline keeps going, never sooner than the hint, and catches up; the app is told once", async (t) => {
  const { server, room, client, joined, seen, errors } = await pacedSetup(t);
  room.append("a");
  await until(() => seen.length === 1);
  const times: number[] = [];
  let refusals = 0;
  // Eight refusals of at least 30 ms each: the re-join outlives the 100 ms deadline.
  pace(server, room, 30, () => refusals++ < 8, times);
  await outage(server, room, () => {
    room.append("b");
    room.append("c");
  });
  await until(() => errors.length === 1, 2000, "the deadline report");
  assert.deepEqual(seen, [1], "not re-joined yet");
  await until(() => seen.length === 3, 3000, "the paced re-join");
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(rejoins(server), 9, "eight refused, the ninth accepted");
  for (let i = 1; i < times.length; i++) {
    assert.ok(times[i]! - times[i - 1]! >= 30, `re-join ${i} came ${times[i]! - times[i - 1]!} ms after the one before`);
  }
  assert.ok(joined.joined && !joined.rejoining);
  assert.equal(client.rooms.get(12), joined);
  assert.equal(errors.length, 1, `told once, not on every attempt: ${errors.map((e) => e.message).join("; ")}`);
  assert.equal(errors[0]?.code, "unavailable");
  assert.ok(errors[0]?.retryable, "a retryable error: the re-join goes on");
  assert.equal(errors[0]?.retryAfterMs, 30);
  room.append("d");
  await until(() => seen.length === 4);
  await settle(50);
  assert.deepEqual(seen, [1, 2, 3, 4]);
  assert.equal(rejoins(server), 9);
  assert.equal(errors.length, 1);
  client.close();
});

test("a paced re-join hands over to the next session's when the socket drops; still told once", async (t) => {
  const { server, room, client, joined, seen, errors } = await pacedSetup(t);
  let paced = true;
  pace(server, room, 20, () => paced);
  await outage(server, room, () => room.append("a"));
  await until(() => errors.length === 1, 2000, "the deadline report");
  const before = rejoins(server);
  room.members.clear();
  server.last.drop(1006);
  await until(() => server.sockets.length === 3 && rejoins(server) > before, 2000, "the next session's re-join");
  assert.ok(rejoinReqs(server).slice(before).every((r) => server.last.received.includes(r)), "no re-join on the dropped socket");
  await settle(250); // the new session's re-join, too, is paced past the 100 ms deadline
  paced = false;
  room.append("b");
  await until(() => seen.length === 2, 2000, "the catch-up");
  assert.deepEqual(seen, [1, 2]);
  assert.ok(joined.joined && !joined.rejoining);
  assert.equal(errors.length, 1, `told once: ${errors.map((e) => e.message).join("; ")}`);
  const after = rejoins(server);
  await settle(60);
  assert.equal(rejoins(server), after, "one re-join loop, ended");
  client.close();
});

test("a final refusal ends a paced re-join: the room is dropped and the app told", async (t) => {
  const { server, room, client, joined, errors } = await pacedSetup(t);
  let refusals = 0;
  server.handler = (req, socket) => {
    if (req.op === "room.join" && req.since !== undefined) {
      if (refusals++ < 6) return { error: { code: "unavailable", message: "joins paced", retry_after_ms: 25 } };
      return { error: { code: "forbidden", message: "removed from the room" } };
    }
    return room.handle(req, socket);
  };
  await outage(server, room, () => undefined);
  await until(() => !joined.joined, 2000, "the refusal");
  assert.deepEqual(
    errors.map((e) => [e.code, e.retryable]),
    [
      ["unavailable", true],
      ["forbidden", false],
    ],
  );
  assert.equal(client.rooms.size, 0);
  assert.ok(!joined.rejoining);
  const n = rejoins(server);
  await settle(60);
  assert.equal(rejoins(server), n);
  client.close();
});

test("leave() stops a paced re-join: no more attempts, its wait cleared", async (t) => {
  // With no deadline the app is told at the first refusal, just before the re-join waits.
  const { server, room, client, joined, errors } = await pacedSetup(t, { retryDeadlineMs: 0 });
  pace(server, room, 60_000, () => true);
  await outage(server, room, () => undefined);
  await until(() => errors.length === 1, 2000, "the re-join waiting out the one-minute hint");
  assert.equal(rejoins(server), 1);
  const waiting = timers();
  await joined.leave();
  await settle(20);
  assert.equal(timers(), waiting - 1, "the re-join's timer is cleared");
  assert.ok(!joined.joined && !joined.rejoining);
  assert.equal(client.rooms.size, 0);
  assert.equal(server.ops("room.leave").length, 1);
  assert.equal(rejoins(server), 1);
  assert.equal(errors.length, 1);
  client.close();
});

test("close() stops a paced re-join: no more attempts, no timer left; connect() re-joins afresh", async (t) => {
  const { server, room, client, joined, seen, errors } = await pacedSetup(t, { retryDeadlineMs: 0 });
  let paced = true;
  pace(server, room, 60_000, () => paced);
  await outage(server, room, () => room.append("a"));
  await until(() => errors.length === 1, 2000, "the re-join waiting out the one-minute hint");
  assert.equal(rejoins(server), 1);
  const waiting = timers();
  client.close();
  await settle(20);
  assert.equal(timers(), waiting - 1, "the re-join's timer is cleared");
  assert.ok(!joined.rejoining);
  assert.equal(rejoins(server), 1);
  assert.equal(errors.length, 1);
  // The room is still held: the next connect() re-joins it.
  paced = false;
  await client.connect();
  await until(() => seen.length === 1, 2000, "the re-join after connect()");
  assert.equal(rejoins(server), 2);
  assert.ok(joined.joined && !joined.rejoining);
  client.close();
});
