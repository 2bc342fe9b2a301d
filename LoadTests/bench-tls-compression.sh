#!/usr/bin/env bash
# TLS and permessage-deflate (issue 10), in one run on this machine:
#   1. ping throughput over wss:// as a fraction of ws:// (two hubs, same settings, runs interleaved plain/TLS);
#   2. compression's server CPU and bytes saved on autosave traffic and on proctoring telemetry, as examhub-load
#      sends them (compression on vs EXAMHUB_COMPRESSION=off; bytes counted by the load tester on both sides of
#      its deflate). Hub CPU is read from /proc from the moment every socket is connected to the end of the run
#      (warm-up and measurement) and divided by the messages the hub counted meanwhile (examhub_messages_in_total).
# Usage: swift build -c release && bash LoadTests/bench-tls-compression.sh     (DURATION=10 s per run by default;
#        ONLY=deflate skips the TLS part, ONLY=tls the compression part)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release}
PORT=${PORT:-18290}
DURATION=${DURATION:-10}
SECRET=bench-secret-0123456789abcdef0123456789
TMP=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
wait_for() { for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timeout waiting for $2 in $1:" >&2; cat "$1" >&2; tail -n 5 "${1%.out}.err" >&2; exit 1; }

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
if [ "${ONLY:-}" != deflate ]; then
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
    ping_row "ws:// (plain), run $round" "$HUB_plain" "http://127.0.0.1:$PORT" --port $PORT
    ping_row "wss:// (TLS 1.3), run $round" "$HUB_tls" "https://127.0.0.1:$((PORT + 1))" --port $((PORT + 1)) --tls
done
echo
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
idle_row() {  # idle_row LABEL PID args...: RSS growth of the hub while 2,000 authenticated sockets sit idle
    local label=$1 pid=$2; shift 2
    local r0 r1
    r0=$(rss_kib "$pid")
    stdbuf -oL "$BIN/examhub-load" sockets idle --connections 2000 --duration 4 --token "$TOKEN" "$@" > "$TMP/idle.out" &
    local load=$!
    for _ in $(seq 1200); do grep -q holding "$TMP/idle.out" && break; kill -0 $load 2>/dev/null || break; sleep 0.1; done
    sleep 1
    r1=$(rss_kib "$pid")
    wait $load
    awk -v l="$label" -v d=$((r1 - r0)) 'BEGIN { printf "| %s | %.1f MiB | %.1f KiB |\n", l, d / 1024, d / 2000 }'
}
echo "2,000 idle authenticated sockets (hello said, nothing else): hub RSS growth"
echo
echo "| transport | RSS growth | per socket |"
echo "|---|---|---|"
idle_row "ws://" "$HUB_plain" --port $PORT
idle_row "wss:// (TLS 1.3)" "$HUB_tls" --port $((PORT + 1)) --tls
kill -TERM "$HUB_plain" "$HUB_tls"; wait "$HUB_plain" "$HUB_tls" || true
echo
fi

# ---------------------------------------------------------------------------------------------------- 2. deflate
[ "${ONLY:-}" = tls ] && exit 0
echo "permessage-deflate's CPU per message in the hub, measured apart (thread CPU time, no sockets), on the frames"
echo "the load tester sends and the events the hub sends back:"
echo
"$BIN/examhub-load" deflate-cost | tail -n +2
echo
traffic_row() {  # traffic_row LABEL MODE WORKLOAD args...; MODE: off, on (default channel kinds), all (every kind)
    local label=$1 mode=$2 workload=$3; shift 3
    case $mode in
        off) start_hub deflate $((PORT + 2)) EXAMHUB_COMPRESSION=off ;;
        on) start_hub deflate $((PORT + 2)) EXAMHUB_COMPRESSION=on ;;
        all) start_hub deflate $((PORT + 2)) EXAMHUB_COMPRESSION=on EXAMHUB_COMPRESSION_CHANNELS=all ;;
    esac
    local pid=$HUB_deflate url="http://127.0.0.1:$((PORT + 2))"
    local c0 m0 c1 m1 out
    # Hub CPU and messages from the moment every socket is connected (the tester's "joined"/"watching" line) to
    # the end: warm-up and measurement, not the connection storm.
    stdbuf -oL "$BIN/examhub-load" "$workload" --port $((PORT + 2)) --secret $SECRET --duration "$DURATION" --compression "$@" \
        > "$TMP/load.out" &
    local load=$!
    for _ in $(seq 1200); do grep -qE "joined|watching" "$TMP/load.out" && break; sleep 0.05; done
    c0=$(cpu_ticks "$pid"); m0=$(messages_in "$url")
    wait $load
    c1=$(cpu_ticks "$pid"); m1=$(messages_in "$url")
    out=$(tail -1 "$TMP/load.out")
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
pw = o.get("proctorWire")
if pw:  # candidates' downlink (acks) and the proctors' (the exam channels' events), apart
    proctor = pw["wireBytesIn"] / max(1, pw["rawBytesIn"])
    down_text = (f"candidates {per_msg_down:.0f} B -> {down:.0%}; proctors "
                 f"{pw['rawBytesIn'] / max(1, pw['messagesIn']):.0f} B -> {proctor:.0%}")
else:
    down_text = f"{per_msg_down:.0f} B -> {down:.0%}"
print(f"| {label} | {mode} | {rate:,.0f} | {ticks / hz / msgs * 1e6:.1f} | {per_msg_up:.0f} B -> {up:.0%} | "
      f"{down_text} | {o['errors']} |")
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
for round in 1 2; do
    for mode in off on; do
        traffic_row "autosave saturation: 64 sockets x 8 in flight" $mode autosave --candidates 64 --interval 0 \
            --in-flight 8 --warmup 2
    done
done
for round in 1 2; do
    for mode in off on all; do
        traffic_row "telemetry: 1,000 candidates, 1 frame/s, 10 proctors" $mode proctoring --candidates 1000 \
            --proctors 10 --warmup 3
    done
done
