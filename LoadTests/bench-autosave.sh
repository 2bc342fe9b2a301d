#!/usr/bin/env bash
# Autosave benchmark (issue 3): durable acks per second at saturation, and ack latency (p50/p99/max) at 1,000,
# 5,000 and 10,000 simulated candidates each saving every 2 seconds; for SQLite and for PostgreSQL (a real server
# started here with initdb/pg_ctl). Every ack is sent after its commit; the load tester checks every version.
# Usage: swift build -c release && bash LoadTests/bench-autosave.sh [sqlite|postgres|both]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release}
WHICH=${1:-both}
PORT=${PORT:-18190}
DURATION=${DURATION:-15}
SECRET=bench-secret-0123456789abcdef0123456789
TMP=$(mktemp -d)
chmod 755 "$TMP"
PGBIN=/usr/lib/postgresql/15/bin
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    if [ -f "$TMP/pg/postmaster.pid" ]; then as_pg "$PGBIN/pg_ctl" -D "$TMP/pg" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
wait_for() { for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timeout waiting for $2" >&2; exit 1; }

start_hub() {  # start_hub URL
    EXAMHUB_PORT=$PORT EXAMHUB_DATABASE_URL="$1" EXAMHUB_JWT_SECRET=$SECRET EXAMHUB_DEV=0 \
        EXAMHUB_RATE_LIMIT=1000000 EXAMHUB_RATE_BURST=1000000 EXAMHUB_MAX_CONNECTIONS=200000 \
        "$BIN/examhub" serve > "$TMP/hub.out" 2> "$TMP/hub.err" &
    HUB=$!
    wait_for "$TMP/hub.out" "listening on"
}
stop_hub() { kill -TERM $HUB; wait $HUB || true; }

row() {  # row BACKEND LABEL args...
    local backend=$1 label=$2; shift 2
    local out; out=$("$BIN/examhub-load" autosave --port "$PORT" --secret "$SECRET" --duration "$DURATION" "$@" | tail -1)
    python3 - "$backend" "$label" "$out" <<'PY'
import json, sys
b, label, o = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
errs = o["errors"] + o["versionErrors"]
print(f"| {b} | {label} | {o['acksPerSecond']:,.0f} | {o['p50Ms']:.2f} | {o['p99Ms']:.2f} | {o['maxMs']:.2f} | {errs} |")
PY
}

run_backend() {  # run_backend NAME URL
    start_hub "$2"
    row "$1" "saturation: 64 sockets x 32 in flight" --candidates 64 --interval 0 --in-flight 32 --warmup 3
    for n in 1000 5000 10000; do
        row "$1" "$n candidates, a save every 2 s" --candidates $n --interval 2 --warmup 3
    done
    stop_hub
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); hub and load tester on the same cores"
echo
echo "| store | load | acks/s | p50 ms | p99 ms | max ms | errors |"
echo "|---|---|---|---|---|---|---|"
if [ "$WHICH" = sqlite ] || [ "$WHICH" = both ]; then
    run_backend SQLite "sqlite://$TMP/bench.db"
fi
if [ "$WHICH" = postgres ] || [ "$WHICH" = both ]; then
    mkdir -p "$TMP/pg"
    [ "$(id -u)" = 0 ] && chown postgres "$TMP/pg"
    as_pg "$PGBIN/initdb" -D "$TMP/pg" -U postgres -A trust > "$TMP/initdb.log" 2>&1
    PGPORT=$((PORT + 1))
    as_pg "$PGBIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg/log" -o "-p $PGPORT -k $TMP/pg -c listen_addresses=127.0.0.1 -c max_connections=200" -w start > /dev/null
    as_pg "$PGBIN/createdb" -h 127.0.0.1 -p $PGPORT -U postgres examhub
    run_backend PostgreSQL "postgres://postgres@127.0.0.1:$PGPORT/examhub"
fi
