# Shared by the bench/run-*.sh scripts (sourced): the servers a script started, stopped on exit
# by their PIDs only, and waiting for a port to listen.

SERVER_PIDS=""

# Stops the servers this script started (SERVER_PIDS) and waits for them.
stop_server() {
  for pid in $SERVER_PIDS; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SERVER_PIDS=""
}
trap stop_server EXIT

# Waits up to 10 s until something listens on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$(basename "$0"): nothing listening on port $1" >&2
  return 1
}
