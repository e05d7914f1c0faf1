//! Benchmark: N SDK clients in one Node process, spread over rooms where publishers keep
//! sending, through a node restart (SIGTERM drain or SIGKILL crash). Measures the time until
//! every client has re-joined and caught up, and counts messages lost or repeated (what each
//! client's `onMessage` saw against the room's stored history). Loopback only, bounded in
//! clients, rate and time. Run by `bench/reconnect.sh`.
//!
//! Usage: node dist/bench/reconnect.js [--clients 2000] [--rooms 20] [--rate 2] [--signal SIGTERM|SIGKILL]
//!        [--profile release|debug] [--drain-ms 5000] [--jitter-ms 5000] [--before-s 5] [--after-s 10]

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { CorralClient } from "../client.js";
import type { Room } from "../room.js";
import { apiAs, CorralNode, sleep, waitFor } from "../node-tests/harness.js";

const { values: args } = parseArgs({
  options: {
    clients: { type: "string", default: "2000" },
    rooms: { type: "string", default: "20" },
    rate: { type: "string", default: "2" }, // messages per second per room
    signal: { type: "string", default: "SIGTERM" },
    profile: { type: "string", default: "release" },
    "before-s": { type: "string", default: "5" }, // sending before the stop
    "after-s": { type: "string", default: "10" }, // sending after the restart
    // The node's shutdown drain and its clients' reconnect spread (config defaults: 5 s each).
    "drain-ms": { type: "string", default: "5000" },
    "jitter-ms": { type: "string", default: "5000" },
  },
});

const N = Math.min(10_000, Number(args.clients));
const ROOMS = Math.max(1, Number(args.rooms));
const RATE = Math.min(50, Number(args.rate));
const SIGNAL = args.signal === "SIGKILL" ? "SIGKILL" : "SIGTERM";
const PROFILE = args.profile === "debug" ? "debug" : "release";
const LIMIT_MS = 240_000;

interface Seeded {
  id: number;
  username: string;
  token: string;
}

interface Member {
  client: CorralClient;
  room: Room | null;
  roomId: number;
  /** The room's last seq when this client first joined: it must see every later one. */
  joinSeq: number;
  seqs: number[];
  repeated: number;
}

function log(msg: string): void {
  console.error(`[${new Date().toISOString()}] ${msg}`);
}

async function main(): Promise<void> {
  const watchdog = setTimeout(() => {
    log(`bench exceeded ${LIMIT_MS} ms: aborting`);
    process.exit(2);
  }, LIMIT_MS);
  watchdog.unref();

  // Accounts straight into the node's database (one shared password hash), before it starts.
  const node = await CorralNode.start({
    profile: PROFILE,
    env: { CORRAL_SERVER__DRAIN_MS: String(args["drain-ms"]), CORRAL_SERVER__RECONNECT_JITTER_MS: String(args["jitter-ms"]) },
  });
  await node.stop("SIGTERM");
  const tokensFile = join(node.dataDir, "tokens.json");
  execFileSync(node.bin, ["--data-dir", node.dataDir, "admin", "seed-users", "--count", String(N + ROOMS), "--prefix", "sdkbench", "--out", tokensFile], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, ...node.env },
  });
  const users = JSON.parse(readFileSync(tokensFile, "utf8")) as Seeded[];
  await node.restart();
  try {
    await run(node, users);
  } finally {
    await node.dispose();
  }
}

async function run(node: CorralNode, users: Seeded[]): Promise<void> {
  const owner = users[0]!;
  const roomIds: number[] = [];
  for (let r = 0; r < ROOMS; r++) {
    const { room_id } = await apiAs(node, owner).post<{ room_id: number }>("/api/v1/rooms", { name: `bench ${r}` });
    roomIds.push(room_id);
  }

  // Listeners: N clients, round-robin over the rooms.
  const members: Member[] = [];
  const connectStart = Date.now();
  for (let i = 0; i < N; i += 200) {
    const batch = users.slice(ROOMS + i, ROOMS + Math.min(N, i + 200));
    await Promise.all(
      batch.map(async (u, j) => {
        const m: Member = {
          client: new CorralClient({ url: node.wsUrl, token: u.token, WebSocket, requestTimeoutMs: 20_000, retryDeadlineMs: 120_000 }),
          room: null,
          roomId: roomIds[(i + j) % ROOMS]!,
          joinSeq: 0,
          seqs: [],
          repeated: 0,
        };
        members.push(m);
        m.client.onError((e) => log(`client error: ${e.code} ${e.message}`));
        await m.client.connect();
        m.room = await m.client.joinRoom(m.roomId, {
          keep: 1,
          onMessage: (msg) => {
            if (m.seqs.length > 0 && msg.seq <= m.seqs[m.seqs.length - 1]!) m.repeated += 1;
            m.seqs.push(msg.seq);
          },
        });
        m.joinSeq = m.room.lastSeq;
      }),
    );
  }
  log(`${N} clients connected and joined ${ROOMS} rooms in ${Date.now() - connectStart} ms`);

  // Publishers: one per room, one message at a time at RATE per second, each send retried by the SDK.
  const acked = new Map<number, number>(); // room -> last acknowledged seq
  let publishing = true;
  const publishers = await Promise.all(
    roomIds.map(async (roomId, r) => {
      const client = new CorralClient({ url: node.wsUrl, token: users[r + 1]!.token, WebSocket, retryDeadlineMs: 120_000 });
      await client.connect();
      const room = await client.joinRoom(roomId);
      const loop = (async () => {
        for (let k = 0; publishing; k++) {
          const t = Date.now();
          const { seq } = await room.send(`room ${r} message ${k}`);
          acked.set(roomId, seq);
          await sleep(Math.max(0, 1000 / RATE - (Date.now() - t)));
        }
      })();
      return { client, loop };
    }),
  );

  await sleep(Number(args["before-s"]) * 1000);
  const stopAt = Date.now();
  const heldAtStop = new Map(acked);
  log(`${SIGNAL} (messages acknowledged so far: ${[...acked.values()].reduce((a, b) => a + b, 0)})`);
  await node.stop(SIGNAL);
  const downAt = Date.now();
  await node.restart();
  const upAt = Date.now();
  log(`node down after ${downAt - stopAt} ms, healthy again after ${upAt - stopAt} ms`);

  // Every client re-joined (open again) and caught up to what was acknowledged before the stop.
  const caughtUp = (m: Member) => m.client.state === "open" && (m.room?.lastSeq ?? 0) >= (heldAtStop.get(m.roomId) ?? 0);
  // When each client was first seen re-joined and caught up (polled every 10 ms).
  const backAfter = new Map<Member, number>();
  await waitFor(
    () => {
      for (const m of members) if (!backAfter.has(m) && caughtUp(m)) backAfter.set(m, Date.now() - stopAt);
      return backAfter.size === members.length;
    },
    120_000,
    "every client to re-join and catch up",
  );
  const allBackAt = Date.now();
  const times = [...backAfter.values()].sort((a, b) => a - b);
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))]!;
  log(`every client re-joined and caught up ${allBackAt - stopAt} ms after the ${SIGNAL}`);

  await sleep(Number(args["after-s"]) * 1000);
  publishing = false;
  await Promise.all(publishers.map((p) => p.loop));
  await waitFor(() => members.every((m) => (m.room?.lastSeq ?? 0) >= (acked.get(m.roomId) ?? 0)), 60_000, "final convergence");

  // What the store holds per room (each logical send once?) against what each client saw.
  let lost = 0;
  let repeated = 0;
  let stored = 0;
  let duplicateStores = 0;
  const reader = publishers[0]!.client;
  const expectedByRoom = new Map<number, number>();
  for (const roomId of roomIds) {
    const texts: string[] = [];
    let before: number | undefined;
    for (;;) {
      const page = await reader.request("room.history", { room: roomId, limit: 200, ...(before ? { before_seq: before } : {}) });
      if (page.messages.length === 0) break;
      texts.unshift(...page.messages.map((m) => m.text));
      before = page.messages[0]!.seq;
      if (before <= 1) break;
    }
    stored += texts.length;
    duplicateStores += texts.length - new Set(texts).size;
    expectedByRoom.set(roomId, texts.length);
  }
  for (const m of members) {
    const last = expectedByRoom.get(m.roomId)!;
    const seen = new Set(m.seqs);
    // A client must have seen every seq after its first join, up to the room's last.
    for (let s = m.joinSeq + 1; s <= last; s++) if (!seen.has(s)) lost += 1;
    repeated += m.repeated + (m.seqs.length - seen.size);
  }
  for (const m of members) m.client.close();
  for (const p of publishers) p.client.close();

  const result = {
    date: new Date().toISOString(),
    clients: N,
    rooms: ROOMS,
    rate_per_room: RATE,
    signal: SIGNAL,
    profile: PROFILE,
    drain_ms: Number(args["drain-ms"]),
    reconnect_jitter_ms: Number(args["jitter-ms"]),
    node_restart_ms: upAt - stopAt,
    all_rejoined_caught_up_ms_after_stop: allBackAt - stopAt,
    all_rejoined_caught_up_ms_after_healthy: allBackAt - upAt,
    rejoined_caught_up_ms_after_stop_p50_p90_p99: [pct(50), pct(90), pct(99)],
    load_average_1m_at_end: Math.round(loadavg()[0]! * 100) / 100,
    messages_stored: stored,
    duplicate_stores: duplicateStores,
    deliveries: members.reduce((a, m) => a + m.seqs.length, 0),
    lost,
    repeated,
  };
  console.log(JSON.stringify(result, null, 2));
  if (lost !== 0 || repeated !== 0 || duplicateStores !== 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
