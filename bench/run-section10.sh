#!/usr/bin/env bash
# SPEC.md section 10, single node: runs each scenario at full size, one after the other, each
# against a fresh release node this script starts (fresh data dir, embedded SQLite, users and
# a merchant seeded with `corral admin seed-users`), the node pinned to core 0 and the load
# generator to core 1. Every run's scenario, tokens, result.json and report.html land in
# $OUT/<scenario>/, and a one-line summary per run is printed at the end. The peers (bare
# tokio-tungstenite, Node `ws`) are run by bench/run-fanout.sh.
#
#   bench/run-section10.sh                               # every scenario below, full size
#   SCENARIOS="flash-crowd chat-ack" bench/run-section10.sh
#   SCALE=0.01 OUT=/tmp/s10 bench/run-section10.sh       # a smoke run: 1% of the clients,
#                                                        # phases cut to a few seconds
#   MODE=redis SCENARIOS=flash-crowd bench/run-section10.sh
#   CORRAL_BIN=/tmp/corral-old SCENARIOS=flash-crowd bench/run-section10.sh   # another build
#                                 # cluster mode on one node: a fresh PostgreSQL database on
#                                 # 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (both dropped
#                                 # after each run) instead of the embedded SQLite and ledger
#   MODE=redis NODES=3 SCENARIOS=flash-crowd-45k bench/run-section10.sh
#                                 # three nodes of one cluster on ports PORT.. (all on core 0),
#                                 # load generator worker i driving node i mod 3
#
# Scenarios (config/loadtest/<name>.toml):
#   connect-capacity  19,000 idle sockets, RSS per connection      (target <= 8 KiB)
#   chat-storm        fan-out into one 10,000-member room          (p99 delivery <= 50 ms at 10 msg/s)
#   chat-ack          10,000 durable messages/s over 1,000 rooms   (ack p99 <= 20 ms)
#   flash-crowd       15,000 clients claim 1,000 slots at the start (p99 claim <= 250 ms,
#                     no oversell, no lost ack; countdown start skew p99 <= 100 ms)
#   feed-burst, soak  not in the section 10 table; add them to SCENARIOS to run them too
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCENARIOS=${SCENARIOS:-"connect-capacity chat-storm chat-ack flash-crowd"}
SCALE=${SCALE:-1}
MODE=${MODE:-embedded}
NODES=${NODES:-1}
if [ "$NODES" -gt 1 ] && [ "$MODE" != redis ]; then
  echo "run-section10: NODES > 1 needs MODE=redis (nodes share PostgreSQL and Redis)" >&2
  exit 2
fi
PORT=${PORT:-9100}
OUT=${OUT:-$ROOT/bench/out/section10-$(date -u +%Y%m%dT%H%M%SZ)}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
mkdir -p "$OUT"

cargo build --release -p corral -p corral-loadtest
# Another build of Corral to measure against the same peers and load generator (a before/after).
CORRAL_BIN=${CORRAL_BIN:-$BIN/corral}

. bench/lib.sh

# Copies a scenario, scaled by $SCALE (clients, publishers, rooms, and phase lengths capped
# at a few seconds when scaled down), and prints its client count.
prepare() { # source.toml dest.toml
  python3 - "$1" "$2" "$SCALE" <<'PY'
import re, sys
src, dst, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
text = open(src).read()
if scale < 1:
    clients = max(20, int(int(re.search(r"^clients = (\d+)", text, re.M).group(1)) * scale))
    def cap(key, limit):
        global text
        text = re.sub(rf"^{key} = (\d+)", lambda m: f"{key} = {min(int(m.group(1)), limit)}", text, flags=re.M)
    text = re.sub(r"^clients = \d+", f"clients = {clients}", text, flags=re.M)
    cap("publishers", max(1, clients // 10))
    cap("rooms", max(1, clients // 10))
    cap("items", 10)
    # phase lengths, not the connect phase's time allowance
    head, sep, rest = text.partition("\n[connect]")
    connect, sep2, tail = rest.partition("\n[")
    tail = re.sub(r"^seconds = (\d+)", lambda m: f"seconds = {min(int(m.group(1)), 3)}", sep2 + tail, flags=re.M)
    text = head + sep + connect + tail
    cap("settle_seconds", 1)
    cap("reconnect_every_ms", 1000)
    text = re.sub(r"^rate_per_sec = 0\.\d+", "rate_per_sec = 2", text, flags=re.M)
open(dst, "w").write(text)
print(re.search(r"^clients = (\d+)", text, re.M).group(1))
PY
}

# Every load client connects from 127.0.0.1: lift the per-address limits (default 1,000).
export CORRAL_WS__MAX_PER_IP=100000 CORRAL_SERVER__MAX_CONNECTIONS_PER_IP=100000
for name in $SCENARIOS; do
  dir=$OUT/$name
  mkdir -p "$dir"
  clients=$(prepare "config/loadtest/$name.toml" "$dir/scenario.toml")
  data=$(mktemp -d)
  if [ "$MODE" = redis ]; then
    db=corral_s10_$(date +%s)_${name//-/_}
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
    export CORRAL_DATABASE__URL=postgres://postgres@127.0.0.1:5432/$db
    export CORRAL_REDIS__URL=${REDIS_URL:-redis://127.0.0.1:6379} CORRAL_REDIS__KEY_PREFIX="$db:"
    # Every node signs and verifies tokens with the same key.
    CORRAL_AUTH__JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    export CORRAL_AUTH__JWT_SECRET
  fi
  # Node 0's data dir holds the embedded database and token key the seeded tokens need.
  mkdir -p "$data/node0"
  "$CORRAL_BIN" --data-dir "$data/node0" admin seed-users --count "$clients" --prefix load --out "$dir/tokens.json"
  "$CORRAL_BIN" --data-dir "$data/node0" admin seed-users --count 1 --prefix loadmerchant --role merchant --out "$dir/merchant.json"
  nodes=""
  for i in $(seq 0 $((NODES - 1))); do
    port=$((PORT + i))
    mkdir -p "$data/node$i"
    CORRAL_LOG__FILTER=warn taskset -c 0 "$CORRAL_BIN" --data-dir "$data/node$i" --listen "127.0.0.1:$port" serve \
      > "$dir/server$i.log" 2>&1 & SERVER_PIDS="$SERVER_PIDS $!"
    wait_port "$port"
    nodes="$nodes${nodes:+, }\"ws://127.0.0.1:$port/ws\""
  done
  if [ "$NODES" -gt 1 ]; then
    sed -i "0,/^target = .*/s||&\nnodes = [$nodes]|" "$dir/scenario.toml"
  fi
  first_pid=$(echo $SERVER_PIDS | cut -d' ' -f1)
  echo "== $name ($clients clients, $NODES node(s))"
  taskset -c 1 "$BIN/corral-loadtest" run "$dir/scenario.toml" --target "ws://127.0.0.1:$PORT/ws" \
    --server-pid "$first_pid" --out "$dir" --quiet || echo "($name: checks failed or run error, see $dir)"
  stop_server
  rm -rf "$data"
  if [ "$MODE" = redis ]; then
    redis-cli -u "$CORRAL_REDIS__URL" --scan --pattern "$db:*" | xargs -r redis-cli -u "$CORRAL_REDIS__URL" DEL > /dev/null
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $db"
  fi
done

echo
echo "scenario clients connected passed | key figures (from $OUT)"
for f in "$OUT"/*/result.json; do
  python3 - "$f" <<'PY'
import json, sys, os
r = json.load(open(sys.argv[1]))
lat = r["latency"]
def p99(name):
    return f"{name} p99 {lat[name]['p99_ms']:.1f} ms" if name in lat else None
figures = [p99(n) for n in ("delivery", "reply.room.send", "reply.claim", "reply.claim.held", "reply.claim.sold_out", "start_skew", "start_error", "clock_error")]
tp = r["throughput"]
if tp["deliveries_per_sec"]:
    figures.append(f"{tp['deliveries_per_sec']:.0f} deliveries/s")
if tp.get("decisions_per_sec"):
    figures.append(f"{tp['decisions_per_sec']:.0f} claim decisions/s")
if r.get("capacity"):
    figures.append(f"{r['capacity']['bytes_per_connection'] / 1024:.2f} KiB/conn")
if r.get("claims"):
    c = r["claims"]
    figures.append(f"held {c['held']} of {c['slots']} slots")
print(os.path.basename(os.path.dirname(sys.argv[1])), r["clients"], r["connected"],
      "pass" if r["passed"] else "FAIL", "|", ", ".join(f for f in figures if f))
PY
done
