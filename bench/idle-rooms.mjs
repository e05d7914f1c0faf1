// Opens N rooms on a node (HTTP create, then a WebSocket join and leave each), then samples
// the node's RSS while the idle rooms stop (IDLE_SECS: the node's chat.room_idle_secs).
// Usage: IDLE_SECS=5 node bench/idle-rooms.mjs http://127.0.0.1:PORT NODE_PID N
// (the node on loopback with per-connection and per-user request limits lifted; BENCHMARKS.md).
import { readFileSync } from "node:fs";
import WebSocket from "../clients/js/node_modules/ws/index.js";
const [base, pid, nArg] = process.argv.slice(2);
const N = Number(nArg);
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024;
const post = async (path, body, token) => {
  const r = await fetch(base + "/api/v1" + path, { method: "POST", headers: { "content-type": "application/json", ...(token ? { authorization: "Bearer " + token } : {}) }, body: JSON.stringify(body) });
  const j = await r.json(); if (r.status >= 300) throw new Error(path + " " + r.status + " " + JSON.stringify(j)); return j;
};
const c = { username: "rooms" + Date.now(), password: "correct-horse-battery" };
await post("/auth/register", c);
const token = (await post("/auth/login", c)).token;
const start = rss();
console.log(`rss at start ${start.toFixed(1)} MiB`);
const t0 = Date.now();
const ids = [];
const CONC = 32;
for (let i = 0; i < N; i += CONC) {
  const batch = await Promise.all(Array.from({ length: Math.min(CONC, N - i) }, (_, k) => post("/rooms", { name: `r${i + k}`, private: false }, token)));
  for (const b of batch) ids.push(b.room_id);
}
console.log(`created ${ids.length} rooms in ${((Date.now() - t0) / 1000).toFixed(1)} s, rss ${rss().toFixed(1)} MiB`);
const SOCKETS = 8;
const t1 = Date.now();
await Promise.all(Array.from({ length: SOCKETS }, async (_, s) => {
  const ws = new WebSocket(base.replace("http", "ws") + "/ws", "corral.v1");
  await new Promise((ok) => ws.once("open", ok));
  const waiting = new Map();
  ws.on("message", (d) => { const v = JSON.parse(d.toString()); const w = waiting.get(v.re); if (w) { waiting.delete(v.re); w(v); } });
  let id = 0;
  const req = (op, body) => new Promise((ok) => { id += 1; waiting.set(id, ok); ws.send(JSON.stringify({ id, op, ...body })); });
  const a = await req("auth", { token }); if (!a.ok) throw new Error(JSON.stringify(a));
  const mine = ids.filter((_, i) => i % SOCKETS === s);
  // Up to 50 rooms joined at once per socket (under chat.rooms_per_connection).
  for (let i = 0; i < mine.length; i += 50) {
    const chunk = mine.slice(i, i + 50);
    const joined = await Promise.all(chunk.map((room) => req("room.join", { room })));
    for (const j of joined) if (!j.ok) throw new Error(JSON.stringify(j));
    await Promise.all(chunk.map((room) => req("room.leave", { room })));
  }
  ws.close();
}));
const peak = rss();
console.log(`joined and left ${ids.length} rooms in ${((Date.now() - t1) / 1000).toFixed(1)} s, rss ${peak.toFixed(1)} MiB`);
const idle = Number(process.env.IDLE_SECS ?? 5);
for (let s = 0; s <= idle + 10; s += 1) {
  await new Promise((ok) => setTimeout(ok, 1000));
  if (s % 3 === 0 || s === idle + 10) console.log(`+${s + 1} s after the last leave: rss ${rss().toFixed(1)} MiB`);
}
const metrics = await (await fetch(base + "/metrics")).text();
const retired = /^corral_room_actors_retired_total (\S+)/m.exec(metrics)?.[1];
console.log(`room actors retired: ${retired}`);
console.log(JSON.stringify({ rooms: N, retired: Number(retired), start_mib: +start.toFixed(1), peak_mib: +peak.toFixed(1), end_mib: +rss().toFixed(1) }));
