#!/usr/bin/env bash
# TLS and permessage-deflate (issue 10), in one run on this machine:
#   1. ping throughput over wss:// as a fraction of ws:// (two hubs, same settings, runs interleaved plain/TLS);
#   2. compression's server CPU and bytes saved on autosave traffic and on proctoring telemetry, as examhub-load
#      sends them (compression on vs EXAMHUB_COMPRESSION=off; bytes counted by the load tester on both sides of
#      its deflate). Server CPU is read from /proc around each run and divided by the messages the hub counted
#      (examhub_messages_in_total), so it includes connecting and warm-up, equally for both variants.
# Usage: swift build -c release && bash LoadTests/bench-tls-compression.sh     (DURATION=10 s per run by default)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release}
PORT=${PORT:-18290}
DURATION=${DURATION:-10}
SECRET=bench-secret-0123456789abcdef0123456789
TMP=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
wait_for() { for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timeout waiting for $2" >&2; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=examhub-bench \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null

start_hub() {  # start_hub NAME PORT [VAR=value...]: sets HUB_<NAME> to the pid
    local name=$1 port=$2; shift 2
    env EXAMHUB_PORT=$port EXAMHUB_DATABASE_URL="sqlite://$TMP/$name.db" EXAMHUB_JWT_SECRET=$SECRET EXAMHUB_DEV=0 \
        EXAMHUB_RATE_LIMIT=1000000 EXAMHUB_RATE_BURST=1000000 EXAMHUB_TELEMETRY_RATE=1000 EXAMHUB_TELEMETRY_BURST=1000 \
        "$@" "$BIN/examhub" serve > "$TMP/$name.out" 2> "$TMP/$name.err" &
    eval "HUB_$name=$!"
    wait_for "$TMP/$name.out" "listening on"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
messages_in() {  # messages_in URL
    curl -sk "$1/metrics" | awk '/^examhub_messages_in_total/ {print $2}'
}
TICK=$(getconf CLK_TCK)

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); hub and load tester share them"
echo

# ---------------------------------------------------------------------------------------------------- 1. TLS
start_hub plain $PORT
start_hub tls $((PORT + 1)) EXAMHUB_TLS_CERT="$TMP/cert.pem" EXAMHUB_TLS_KEY="$TMP/key.pem"
TOKEN=$(EXAMHUB_JWT_SECRET=$SECRET "$BIN/examhub" token --role proctor --sub bench --tenant bench --ttl 3600)
ping_row() {  # ping_row LABEL PID URL args...
    local label=$1 pid=$2 url=$3; shift 3
    local c0 m0 c1 m1 out
    c0=$(cpu_ticks "$pid"); m0=$(messages_in "$url")
    out=$("$BIN/examhub-load" sockets ping --connections 64 --in-flight 16 --duration "$DURATION" --warmup 2 \
        --token "$TOKEN" "$@" | tail -1)
    c1=$(cpu_ticks "$pid"); m1=$(messages_in "$url")
    python3 - "$label" "$out" "$((c1 - c0))" "$((m1 - m0))" "$TICK" <<'PY'
import json, sys
label, o, ticks, msgs, hz = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
cpu = ticks / hz
print(f"| {label} | {o['messagesPerSecond']:,.0f} | {msgs / cpu:,.0f} | {cpu / msgs * 1e6:.1f} | {o['p50Ms']:.2f} | {o['p99Ms']:.2f} | {o['errors']} |")
PY
}
echo "ping ops, 64 sockets x 16 in flight, ${DURATION} s after 2 s warm-up; runs alternate:"
echo
echo "| transport | messages/s | per hub CPU-s | hub CPU µs/msg | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|---|"
for round in 1 2; do
    ping_row "ws:// (plain), run $round" "$HUB_plain" "http://127.0.0.1:$PORT"
    ping_row "wss:// (TLS 1.3), run $round" "$HUB_tls" "https://127.0.0.1:$((PORT + 1))" --tls
done
kill -TERM "$HUB_plain" "$HUB_tls"; wait "$HUB_plain" "$HUB_tls" || true
echo

# ---------------------------------------------------------------------------------------------------- 2. deflate
traffic_row() {  # traffic_row LABEL MODE WORKLOAD args...; MODE: off, on (default channel kinds), all (every kind)
    local label=$1 mode=$2 workload=$3; shift 3
    case $mode in
        off) start_hub deflate $((PORT + 2)) EXAMHUB_COMPRESSION=off ;;
        on) start_hub deflate $((PORT + 2)) EXAMHUB_COMPRESSION=on ;;
        all) start_hub deflate $((PORT + 2)) EXAMHUB_COMPRESSION=on EXAMHUB_COMPRESSION_CHANNELS=all ;;
    esac
    local pid=$HUB_deflate url="http://127.0.0.1:$((PORT + 2))"
    local c0 m0 c1 m1 out
    c0=$(cpu_ticks "$pid"); m0=$(messages_in "$url")
    out=$("$BIN/examhub-load" "$workload" --port $((PORT + 2)) --secret $SECRET --duration "$DURATION" --compression "$@" | tail -1)
    c1=$(cpu_ticks "$pid"); m1=$(messages_in "$url")
    kill -TERM "$pid"; wait "$pid" || true
    rm -f "$TMP"/deflate.db*
    python3 - "$label" "$mode" "$out" "$((c1 - c0))" "$((m1 - m0))" "$TICK" <<'PY'
import json, sys
label, mode, o, ticks, msgs, hz = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
w = o["wire"]
rate = o.get("acksPerSecond") or o.get("eventsPerSecond")
up = w["wireBytesOut"] / max(1, w["rawBytesOut"])
down = w["wireBytesIn"] / max(1, w["rawBytesIn"])
per_msg_up = w["rawBytesOut"] / max(1, w["messagesOut"])
per_msg_down = w["rawBytesIn"] / max(1, w["messagesIn"])
mode = {"off": "off", "on": "on (attempt, chat events)", "all": "on (all events)"}[mode]
print(f"| {label} | {mode} | {rate:,.0f} | {ticks / hz / msgs * 1e6:.1f} | {per_msg_up:.0f} B -> {up:.0%} | "
      f"{per_msg_down:.0f} B -> {down:.0%} | {o['errors']} |")
PY
}
echo "permessage-deflate, the load tester offering it as browsers do (client_max_window_bits; the hub keeps no"
echo "context of its own, clients keep theirs within the memory budget). 'wire' = bytes on the wire as a share of"
echo "the messages' bytes (client->hub, hub->client):"
echo
echo "| traffic | compression | saves or events/s | hub CPU µs/msg | client->hub: message -> wire | hub->client: message -> wire | errors |"
echo "|---|---|---|---|---|---|---|"
for mode in off on; do
    traffic_row "autosave: 1,000 candidates, a save every 2 s" $mode autosave --candidates 1000 --interval 2 --warmup 3
done
for mode in off on; do
    traffic_row "autosave saturation: 64 sockets x 8 in flight" $mode autosave --candidates 64 --interval 0 --in-flight 8 --warmup 2
done
for mode in off on all; do
    traffic_row "telemetry: 1,000 candidates, 1 frame/s, 10 proctors" $mode proctoring --candidates 1000 --proctors 10 --warmup 3
done
