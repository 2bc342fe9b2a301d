#!/usr/bin/env bash
# Foundation numbers (issue 2): echo on /v1/echo and ping ops on /v1/socket over 64 connections with 16 in flight,
# as messages/s and messages per server CPU-second, against the peers of LoadTests/Peers measured in the same run
# (Node `ws`, Python `websockets`, socketify, Hummingbird, where installed or built); then RSS per idle
# authenticated connection at IDLE_CONNECTIONS sockets.
# Usage: swift build -c release && bash LoadTests/measure-foundation.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release}
PORT=${PORT:-18090}
CONNS=${CONNS:-64}
INFLIGHT=${INFLIGHT:-16}
DURATION=${DURATION:-10}
IDLE=${IDLE_CONNECTIONS:-10000}
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

# run_load NAME PID args...: runs examhub-load, prints a table row with msg/s, per CPU-second and p99.
run_load() {
    local name=$1 pid=$2; shift 2
    local c0; c0=$(cpu_ticks "$pid")
    local out; out=$("$BIN/examhub-load" "$@" --connections "$CONNS" --in-flight "$INFLIGHT" --duration "$DURATION" | tail -1)
    local c1; c1=$(cpu_ticks "$pid")
    python3 - "$name" "$out" "$c0" "$c1" "$hz" <<'PY'
import json, sys
name, out, c0, c1, hz = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
cpu = (c1 - c0) / hz
print(f"| {name} | {out['messagesPerSecond']:,.0f} | {out['messages'] / cpu if cpu else 0:,.0f} | {out['p50Ms']:.2f} | {out['p99Ms']:.2f} | {out['errors']} |")
PY
}

# wait_for_peer FILE PID: 0 once the peer printed "listening on", 1 if it exited first.
wait_for_peer() {
    for _ in $(seq 1200); do
        grep -q "listening on" "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    echo "timeout waiting for $1" >&2; exit 1
}
wait_for() { for _ in $(seq 1200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timeout waiting for $2" >&2; exit 1; }

EXAMHUB_PORT=$PORT EXAMHUB_DATABASE_URL="sqlite://$TMP/db.sqlite" EXAMHUB_RATE_LIMIT=10000000 EXAMHUB_RATE_BURST=10000000 \
    EXAMHUB_MAX_CONNECTIONS=200000 "$BIN/examhub" serve > "$TMP/hub.out" 2> "$TMP/hub.err" &
HUB=$!
wait_for "$TMP/hub.out" "listening on"
TOKEN=$(awk '/candidate:/{print $2}' "$TMP/hub.out")

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load client on the same machine"
echo
echo "| server, workload | messages/s | messages per server CPU-second | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|"
run_load "ExamHub /v1/echo" "$HUB" echo --port "$PORT" --warmup 2
run_load "ExamHub ping op (/v1/socket)" "$HUB" ping --port "$PORT" --token "$TOKEN" --warmup 2

# The peers (LoadTests/Peers/README.md), each started by start.sh; one whose runtime is missing (start.sh exits 2)
# is left out, and hummingbird only runs when its release binary is already built.
n=0
for peer in node-ws python-websockets socketify hummingbird; do
    n=$((n + 1))
    if [ "$peer" = hummingbird ] && [ ! -x LoadTests/Peers/hummingbird-peer/.build/release/hummingbird-peer ]; then
        continue
    fi
    bash LoadTests/Peers/start.sh "$peer" $((PORT + n)) > "$TMP/$peer.out" 2>&1 &
    PEER=$!
    if ! wait_for_peer "$TMP/$peer.out" $PEER; then
        echo "(peer $peer left out: $(tail -1 "$TMP/$peer.out"))" >&2
        continue
    fi
    run_load "$peer echo (peer)" "$PEER" echo --port $((PORT + n)) --warmup 2
    kill -TERM $PEER
    wait $PEER || true
done

echo
base=$(rss_kib "$HUB")
"$BIN/examhub-load" idle --port "$PORT" --token "$TOKEN" --connections "$IDLE" --duration 8 > "$TMP/idle.out" &
IDLEPID=$!
wait_for "$TMP/idle.out" "holding"
sleep 3
held=$(rss_kib "$HUB")
wait $IDLEPID || true
python3 -c "
base, held, n = $base, $held, $IDLE
print(f'RSS: {base/1024:.1f} MiB before, {held/1024:.1f} MiB with {n} idle authenticated sockets: {(held-base)*1024/n/1024:.2f} KiB per socket')
"
kill -TERM $HUB
wait $HUB
