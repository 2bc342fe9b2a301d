#!/usr/bin/env bash
# Several nodes (issue 6): latency from a telemetry frame on node B to `flag.raised` at a proctor on node A, both
# nodes on one PostgreSQL 15 (started here, in a temporary folder), compared with the same load on one node of that
# PostgreSQL and on one node of SQLite. `examhub-load proctoring`: candidates send one telemetry frame a second,
# a share `FLAG_RATIO` of them raises a flag; each flag is a latency sample (the tester matches it to its frame).
# Every run is bounded: DURATION seconds measured (default 20) after 3 s of warm-up; ROUNDS (default 1) repeats
# the three setups in turn.
# Usage: swift build [-c release] --product examhub && swift build [-c release] --product examhub-load &&
#        BIN=.build/release bash LoadTests/bench-multinode.sh [candidates] [proctors]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/debug}
CANDIDATES=${1:-200}
PROCTORS=${2:-4}
DURATION=${DURATION:-20}
FLAG_RATIO=${FLAG_RATIO:-0.25}
PG_BIN=${EXAMHUB_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}
SECRET=bench-secret-0123456789abcdef0123456789
TMP=$(mktemp -d)
chmod 755 "$TMP"
AS=()
if [ "$(id -u)" = 0 ]; then AS=(runuser -u postgres --); chown postgres "$TMP"; fi
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    "${AS[@]}" "$PG_BIN/pg_ctl" -D "$TMP/pg" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT
wait_for() { for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timeout waiting for $2 in $1" >&2; cat "${1%.out}.err" >&2 || true; exit 1; }

"${AS[@]}" "$PG_BIN/initdb" -D "$TMP/pg" -U postgres -A trust -E UTF8 >/dev/null
"${AS[@]}" "$PG_BIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg.log" -w start \
    -o "-p $PGPORT -k $TMP -c listen_addresses=127.0.0.1 -c max_connections=300" >/dev/null

node() {  # node NAME DATABASE_URL PORT
    EXAMHUB_PORT=$3 EXAMHUB_DATABASE_URL="$2" EXAMHUB_JWT_SECRET=$SECRET EXAMHUB_DEV=0 EXAMHUB_THREADS=${THREADS:-2} \
        EXAMHUB_MAX_CONNECTIONS=200000 "$BIN/examhub" serve > "$TMP/$1.out" 2> "$TMP/$1.err" &
    wait_for "$TMP/$1.out" "listening on"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
run() {  # run LABEL CANDIDATE_PORT PROCTOR_PORT
    local out
    out=$(timeout 120 "$BIN/examhub-load" proctoring --port "$2" --proctor-port "$3" --secret $SECRET \
        --candidates "$CANDIDATES" --proctors "$PROCTORS" --flag-ratio "$FLAG_RATIO" --duration "$DURATION" --warmup 3)
    echo "$out" | grep -v '^{' >&2
    echo "$out" | grep '^{' | python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
print(f\"| $1 | {r['candidates']} | {r['flagSamples']} | {r['flagP50Ms']:.2f} | {r['flagP90Ms']:.2f} | {r['flagP99Ms']:.2f} | {r['flagMaxMs']:.2f} | {r['ackP50Ms']:.2f} / {r['ackP99Ms']:.2f} | {r['errors'] + r['unmatchedFlags']} |\")
"
}
stop() { for p in "$@"; do kill -TERM "$p"; wait "$p" || true; done; }

"${AS[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres bench_two
"${AS[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres bench_one
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); build: $BIN; nodes, PostgreSQL and load tester share the cores"
echo
echo "| setup | candidates | flag samples | telemetry→flag p50 ms | p90 | p99 | max | telemetry ack p50 / p99 ms | errors |"
echo "|---|---|---|---|---|---|---|---|---|"

A=$(free_port); node a "postgres://postgres@127.0.0.1:$PGPORT/bench_two" "$A"; PA=$!
B=$(free_port); node b "postgres://postgres@127.0.0.1:$PGPORT/bench_two" "$B"; PB=$!
S=$(free_port); node one "postgres://postgres@127.0.0.1:$PGPORT/bench_one" "$S"; PS=$!
L=$(free_port); node lite "sqlite://$TMP/bench.db" "$L"; PL=$!
# Rounds alternate the three setups, so that a busy moment of the machine hits them alike.
for _ in $(seq "${ROUNDS:-1}"); do
    run "PostgreSQL, candidates on node B, proctors on node A" "$B" "$A"
    run "PostgreSQL, one node (events through the shared log)" "$S" "$S"
    run "SQLite, one node (no PostgreSQL hop)" "$L" "$L"
done
stop $PA $PB $PS $PL
