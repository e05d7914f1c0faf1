#!/usr/bin/env bash
# Idle memory per connection side by side: Corral (authenticated sessions), the bare
# tokio-tungstenite peer and the Node `ws` peer (plain sockets), each holding CLIENTS idle
# connections opened by the same load generator (connect-capacity; `raw = true` for the
# peers). RSS is read from /proc before the first connection and after the settle. Each server
# is pinned to core 0 and the load generator to core 1; a fresh server (and data dir) per run.
#
#   bench/run-idle.sh                          # 19,000 connections (the most one process holds)
#   CLIENTS=10000 SERVERS="corral rust" bench/run-idle.sh
#   CORRAL_BIN=/tmp/corral-old bench/run-idle.sh   # another build of Corral, same peers
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CLIENTS=${CLIENTS:-19000}
SERVERS=${SERVERS:-"corral rust node"}
OUT=${OUT:-$ROOT/bench/out/idle-$(date -u +%Y%m%dT%H%M%SZ)}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
mkdir -p "$OUT"

cargo build --release -p corral -p corral-loadtest
CORRAL_BIN=${CORRAL_BIN:-$BIN/corral}
[ -d bench/peers/node-ws/node_modules ] || bench/peers/node-ws/install.sh

. bench/lib.sh

scenario() { # name target raw [tokens]
  cat <<TOML
name = "idle-$1-$CLIENTS"
kind = "connect-capacity"
target = "$2"
workers = 2
source_addrs = 2
max_seconds = 300
$( [ -n "${4:-}" ] && echo "tokens = \"$4\"" )

[connect]
clients = $CLIENTS
ramp_per_sec = 4000
concurrency = 256
seconds = 120

[capacity]
settle_seconds = 5
server_pid = $SERVER_PIDS
raw = $3
TOML
}

for server in $SERVERS; do
  dir=$OUT/$server
  mkdir -p "$dir"
  case $server in
    rust)
      taskset -c 0 "$BIN/broadcast-peer" 127.0.0.1:9101 & SERVER_PIDS=$!
      wait_port 9101
      scenario rust ws://127.0.0.1:9101/ true > "$dir/scenario.toml" ;;
    node)
      taskset -c 0 node bench/peers/node-ws/server.js 9102 & SERVER_PIDS=$!
      wait_port 9102
      scenario node ws://127.0.0.1:9102/ true > "$dir/scenario.toml" ;;
    corral)
      data=$(mktemp -d)
      "$CORRAL_BIN" --data-dir "$data" admin seed-users --count "$CLIENTS" --prefix idle --out "$dir/tokens.json"
      # Every client connects from 127.0.0.1-2: lift the per-address limits (default 1,000).
      CORRAL_LOG__FILTER=warn CORRAL_WS__MAX_PER_IP=100000 CORRAL_SERVER__MAX_CONNECTIONS_PER_IP=100000 \
        taskset -c 0 "$CORRAL_BIN" --data-dir "$data" --listen 127.0.0.1:9103 serve & SERVER_PIDS=$!
      wait_port 9103
      scenario corral ws://127.0.0.1:9103/ws false tokens.json > "$dir/scenario.toml" ;;
  esac
  echo "== $server, $CLIENTS idle connections"
  taskset -c 1 "$BIN/corral-loadtest" run "$dir/scenario.toml" --out "$dir" --quiet || echo "($server: run failed, see $dir)"
  stop_server
done

echo
echo "server connected rss_before_mib rss_after_mib bytes_per_connection (from $OUT)"
for f in "$OUT"/*/result.json; do
  python3 - "$f" <<'PY'
import json, sys, os
r = json.load(open(sys.argv[1]))
c = r.get("capacity") or {}
mib = lambda b: round(b / 1048576, 1) if b else None
print(os.path.basename(os.path.dirname(sys.argv[1])), r["connected"], mib(c.get("rss_before_bytes")),
      mib(c.get("rss_after_bytes")), round(c.get("bytes_per_connection", 0)))
PY
done
