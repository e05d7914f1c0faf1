#!/usr/bin/env bash
# The SDK's reconnect benchmark (BENCHMARKS.md, "SDK reconnect under a node restart"):
# 2,000 @corral/client clients in one Node process, 20 rooms with a publisher each, through a
# node restart; prints the time until every client re-joined and caught up, and the messages
# lost or repeated (exit 1 unless both are 0). Loopback only; bounded (4 minutes at most).
#
#   clients/js/bench/reconnect.sh [--signal SIGTERM|SIGKILL] [--clients N] [--rooms R] [--rate MSG_PER_S_PER_ROOM]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/../.." && pwd)"
if [ -z "${CORRAL_BIN:-}" ]; then
  (cd "$repo" && cargo build --release --bin corral)
fi
cd "$here"
[ -d node_modules ] || npm ci
npm run build --silent
# One process holds ~2,000 sockets plus the proxy-free loopback to the node.
ulimit -n 65536 2>/dev/null || true
exec node dist/bench/reconnect.js --profile release "$@"
