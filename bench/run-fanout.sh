#!/usr/bin/env bash
# Room fan-out side by side: Corral (chat-storm, one room), the bare tokio-tungstenite
# broadcast peer and the Node `ws` broadcast peer (raw-broadcast), with the same clients,
# members, publishers, rates and 100-byte messages. Each server is pinned to core 0 and the
# load generator to core 1. Results land in $OUT/<server>-<members>/{result.json,report.html}
# and a one-line summary per run is printed at the end.
#
#   bench/run-fanout.sh                      # 1,000 and 10,000 members
#   MEMBERS="10000" RATE=10 bench/run-fanout.sh
#   SERVERS="rust node" bench/run-fanout.sh  # peers only (e.g. before chat exists)
#   CORRAL_BIN=/tmp/corral-old SERVERS=corral bench/run-fanout.sh  # another build of Corral
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MEMBERS=${MEMBERS:-"1000 10000"}
PUBLISHERS=${PUBLISHERS:-10}
RATE=${RATE:-20}            # messages per second per publisher
SECONDS_RUN=${SECONDS_RUN:-10}
SERVERS=${SERVERS:-"rust node corral"}
OUT=${OUT:-$ROOT/bench/out/fanout-$(date -u +%Y%m%dT%H%M%SZ)}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
mkdir -p "$OUT"

cargo build --release -p corral -p corral-loadtest
# Another build of Corral to measure against the same peers and load generator (a before/after).
CORRAL_BIN=${CORRAL_BIN:-$BIN/corral}
[ -d bench/peers/node-ws/node_modules ] || bench/peers/node-ws/install.sh

. bench/lib.sh

scenario() { # kind target members tokens
  local kind=$1 target=$2 members=$3 tokens=${4:-}
  local workers=$(( (members + 9999) / 10000 ))
  cat <<TOML
name = "fanout-$kind-$members"
kind = "$kind"
target = "$target"
workers = $workers
source_addrs = 2
max_seconds = 300
$( [ -n "$tokens" ] && echo "tokens = \"$tokens\"" )

[connect]
clients = $members
ramp_per_sec = 4000
seconds = 90

[broadcast]
rooms = 1
publishers = $PUBLISHERS
rate_per_sec = $RATE
seconds = $SECONDS_RUN
message_bytes = 100
drain_seconds = 3
TOML
}

for members in $MEMBERS; do
  for server in $SERVERS; do
    dir=$OUT/$server-$members
    mkdir -p "$dir"
    case $server in
      rust)
        taskset -c 0 "$BIN/broadcast-peer" 127.0.0.1:9001 & SERVER_PIDS=$!
        wait_port 9001
        scenario raw-broadcast ws://127.0.0.1:9001/ "$members" > "$dir/scenario.toml" ;;
      node)
        taskset -c 0 node bench/peers/node-ws/server.js 9002 & SERVER_PIDS=$!
        wait_port 9002
        scenario raw-broadcast ws://127.0.0.1:9002/ "$members" > "$dir/scenario.toml" ;;
      corral)
        data=$(mktemp -d)
        "$CORRAL_BIN" --data-dir "$data" admin seed-users --count "$members" --prefix fan --out "$dir/tokens.json"
        # Every member connects from 127.0.0.1: lift the per-address limits (default 1,000).
        CORRAL_SERVER__WORKERS=1 CORRAL_DATABASE__SQLITE_SYNCHRONOUS=normal CORRAL_LOG__FILTER=warn \
          CORRAL_WS__MAX_PER_IP=100000 CORRAL_SERVER__MAX_CONNECTIONS_PER_IP=100000 \
          taskset -c 0 "$CORRAL_BIN" --data-dir "$data" --listen 127.0.0.1:9003 serve & SERVER_PIDS=$!
        wait_port 9003
        scenario chat-storm ws://127.0.0.1:9003/ws "$members" tokens.json > "$dir/scenario.toml" ;;
    esac
    echo "== $server, $members members"
    taskset -c 1 "$BIN/corral-loadtest" run "$dir/scenario.toml" --out "$dir" --quiet || echo "($server $members: checks failed or run error, see $dir)"
    stop_server
  done
done

echo
echo "server members deliveries/s p50_ms p99_ms (from $OUT)"
for f in "$OUT"/*/result.json; do
  python3 - "$f" <<'PY'
import json, sys, os
r = json.load(open(sys.argv[1]))
d = r["latency"].get("delivery", {})
print(os.path.basename(os.path.dirname(sys.argv[1])), round(r["throughput"]["deliveries_per_sec"]),
      d.get("p50_ms"), d.get("p99_ms"), "checks:", "pass" if r["passed"] else "FAIL")
PY
done
