#!/usr/bin/env bash
# ExamHub against the WebSocket servers people would otherwise pick (issue 7), under the same load tester in one
# run, on this machine. For each server: echo (64 sockets x 16 in flight, 32-byte messages), broadcast (one publisher
# at 200 messages/s to 2,000 subscribers; on ExamHub the real thing: a candidate's committed saves fanned out as
# `answer.saved` to 2,000 proctors subscribed to the attempt), and the server's RSS per idle connection at
# IDLE_SMALL and IDLE_LARGE connections (each on a freshly started server). ExamHub also runs the `ping` op. Then one
# Markdown table with every figure and its ratio to ExamHub. Server CPU is read from /proc/PID/stat over the
# measured seconds; the load tester's own CPU is printed too (it shares the cores).
#
# Usage: swift build -c release --product examhub --product examhub-load ... (or swift build -c release)
#        bash LoadTests/compare.sh [server ...]     (default: examhub node-ws python-websockets socketify hummingbird)
# Environment: BIN (.build/release), PORT (18600), DURATION (10), IDLE_SMALL (10000), IDLE_LARGE (50000, capped to
# what `ulimit -n` allows both processes: the load tester holds one descriptor per socket too), LOAD_THREADS (1;
# the load tester's event loops for echo), BROADCAST_THREADS (2: receiving 400,000 messages a second takes more),
# BROADCAST_SUBSCRIBERS (2000), BROADCAST_RATE (200), OUT (folder for the JSON results; default a temporary one),
# PARTS (default "echo broadcast idle": which measurements to run).
# A peer whose runtime is missing is reported as not run (LoadTests/Peers/start.sh exits 2).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release}
PORT=${PORT:-18600}
DURATION=${DURATION:-10}
IDLE_SMALL=${IDLE_SMALL:-10000}
IDLE_LARGE=${IDLE_LARGE:-50000}
THREADS=${LOAD_THREADS:-1}
BTHREADS=${BROADCAST_THREADS:-2}
SUBS=${BROADCAST_SUBSCRIBERS:-2000}
PARTS=" ${PARTS:-echo broadcast idle} "
RATE=${BROADCAST_RATE:-200}
SERVERS=("$@")
[ ${#SERVERS[@]} -gt 0 ] || SERVERS=(examhub node-ws python-websockets socketify hummingbird)
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
TMP=$(mktemp -d)
SECRET=compare-secret-0123456789abcdef0123456789
export EXAMHUB_JWT_SECRET=$SECRET
for b in examhub examhub-load; do
    [ -x "$BIN/$b" ] || { echo "no $BIN/$b: swift build -c release" >&2; exit 2; }
done
limit=$(ulimit -n)
if [ "$IDLE_LARGE" -gt $((limit - 200)) ]; then
    echo "note: ulimit -n is $limit here (the hard limit; raising it needs root outside a container), so the large idle"
    echo "      measurement uses $((limit - 200)) connections instead of $IDLE_LARGE"
    IDLE_LARGE=$((limit - 200))
fi
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

wait_for() { for _ in $(seq 1800); do grep -q "$2" "$1" 2>/dev/null && return 0; kill -0 "$3" 2>/dev/null || return 1; sleep 0.1; done; return 1; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

# start NAME: starts the server on $PORT, sets SERVER_PID; returns 2 when its runtime is missing.
start() {
    local name=$1 log="$TMP/$1.log"
    if [ "$name" = examhub ]; then
        rm -f "$TMP/hub.sqlite"*
        EXAMHUB_PORT=$PORT EXAMHUB_DATABASE_URL="sqlite://$TMP/hub.sqlite" EXAMHUB_DEV=1 EXAMHUB_LOG_LEVEL=warning \
            EXAMHUB_RATE_LIMIT=10000000 EXAMHUB_RATE_BURST=10000000 EXAMHUB_MAX_CONNECTIONS=200000 \
            "$BIN/examhub" serve > "$log" 2>&1 &
    else
        bash LoadTests/Peers/start.sh "$name" "$PORT" > "$log" 2>&1 &
    fi
    SERVER_PID=$!
    if ! wait_for "$log" "listening on" "$SERVER_PID"; then
        wait "$SERVER_PID"; local rc=$?
        SERVER_PID=""
        tail -3 "$log" >&2
        [ $rc -eq 2 ] && return 2 || return 1
    fi
    sleep 0.5
}
stop() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""; sleep 0.5; }

# load NAME WHAT SCENARIO args...: one examhub-load run, its JSON line kept in $OUT/NAME-WHAT.json.
load() {
    local name=$1 what=$2 scenario=$3; shift 3
    local peer=(); [ "$name" = examhub ] || peer=(--peer)
    local threads=$THREADS; [ "$what" = broadcast ] && threads=$BTHREADS
    "$BIN/examhub-load" run "LoadTests/scenarios/$scenario.yaml" --port "$PORT" "${peer[@]}" --threads "$threads" \
        --server-pid "$SERVER_PID" --progress 0 --json "$OUT/$name-$what.json" "$@" > "$TMP/$name-$what.out" 2>&1
    grep -E "^(measured|errors|checks|published|load tester)" "$TMP/$name-$what.out" | sed "s/^/  $name $what: /"
}

# idle NAME N: RSS per idle connection on a fresh server.
idle() {
    local name=$1 n=$2
    start "$name" || return
    local base; base=$(rss_kib "$SERVER_PID")
    local peer=(); [ "$name" = examhub ] || peer=(--peer)
    "$BIN/examhub-load" run LoadTests/scenarios/idle.yaml --port "$PORT" "${peer[@]}" --set connections="$n" \
        --set duration=6 --progress 0 > "$TMP/$name-idle-$n.out" 2>&1 &
    local lt=$!
    wait_for "$TMP/$name-idle-$n.out" "holding" "$lt"
    sleep 3
    local held; held=$(rss_kib "$SERVER_PID")
    local got; got=$(sed -n 's/^holding \([0-9]*\) .*/\1/p' "$TMP/$name-idle-$n.out")
    wait "$lt"
    python3 -c "import json,sys; json.dump({'connections': int(sys.argv[1] or 0), 'baseKiB': int(sys.argv[2]), 'heldKiB': int(sys.argv[3])}, open(sys.argv[4], 'w'))" \
        "$got" "$base" "$held" "$OUT/$name-idle-$n.json"
    echo "  $name idle: ${got:-0} sockets, RSS $((base / 1024)) -> $((held / 1024)) MiB"
    stop
}

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load tester on the same cores ($THREADS thread(s)); results in $OUT"
RAN=()
for name in "${SERVERS[@]}"; do
    echo "== $name"
    start "$name"; rc=$?
    if [ $rc -ne 0 ]; then echo "  $name: not run (start failed, exit $rc)"; continue; fi
    RAN+=("$name")
    if [[ $PARTS == *" echo "* ]]; then
        load "$name" echo echo --set duration="$DURATION"
        [ "$name" = examhub ] && load "$name" ping ping --set duration="$DURATION"
    fi
    [[ $PARTS == *" broadcast "* ]] && load "$name" broadcast broadcast --set subscribers="$SUBS" --set rate="$RATE" \
        --set duration="$DURATION"
    stop
    if [[ $PARTS == *" idle "* ]]; then
        idle "$name" "$IDLE_SMALL"
        idle "$name" "$IDLE_LARGE"
    fi
done

python3 - "$OUT" "$IDLE_SMALL" "$IDLE_LARGE" "${RAN[@]}" <<'PY'
import json, os, sys
out, small, large, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def load(n, w):
    p = os.path.join(out, f"{n}-{w}.json")
    return json.load(open(p)) if os.path.exists(p) else None
def per_cpu(r):
    return r["messages"] / r["serverCpuSeconds"] if r and r.get("serverCpuSeconds") else None
def p99(r, op):
    return r["ops"].get(op, {}).get("p99Ms") if r else None
def idle_kib(n, count):
    r = load(n, f"idle-{count}")
    if not r or not r["connections"]: return None
    return (r["heldKiB"] - r["baseKiB"]) / r["connections"]
def fmt(v, spec=",.0f"):
    return "–" if v is None else format(v, spec)
def ratio(v, base, invert=False):
    if v is None or not base: return ""
    return f" ({(base / v if invert else v / base):.2f}x)"
hub = {"echo": load("examhub", "echo"), "bcast": load("examhub", "broadcast")}
hub_cpu = per_cpu(hub["echo"])
def bc_cpu(b):
    """Server CPU-seconds per million broadcast deliveries."""
    if not b or not b.get("serverCpuSeconds"): return None
    n = b["ops"].get("broadcast delivery", {}).get("count", 0)
    return b["serverCpuSeconds"] / n * 1e6 if n else None
hub_bc = bc_cpu(hub["bcast"])
hub_small, hub_large = idle_kib("examhub", small), idle_kib("examhub", large)
print()
print("Ratios in brackets say how many times better ExamHub does (above 1: ExamHub better): messages per CPU-second as ExamHub over the server; CPU per million deliveries and memory as the server over ExamHub.")
print()
print(f"| server | echo msg/s | echo p99 ms | echo msgs per server CPU-s | server CPU-s per million echo msgs | broadcast deliveries/s | broadcast p99 ms | broadcast lost | server CPU-s per million deliveries | KiB per idle conn ({int(small):,}) | KiB per idle conn ({int(large):,}) | load tester CPU (echo) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for n in names:
    e, b = load(n, "echo"), load(n, "broadcast")
    cpu = per_cpu(e)
    bc = b["ops"].get("broadcast delivery", {}).get("perSecond", 0.0) if b else None
    s, l = idle_kib(n, small), idle_kib(n, large)
    million = 1e6 / cpu if cpu else None
    lost = None if not b else b.get("lostDeliveries", 0)
    row = [n,
           fmt(e and e["messagesPerSecond"]),
           fmt(p99(e, "echo"), ".2f"),
           fmt(cpu) + ("" if n == "examhub" else ratio(cpu, hub_cpu, invert=True)),
           fmt(million, ".2f"),
           fmt(bc),
           fmt(p99(b, "broadcast delivery"), ".2f"),
           fmt(lost, ",d") if lost is not None else "–",
           fmt(bc_cpu(b), ".2f") + ("" if n == "examhub" else ratio(bc_cpu(b), hub_bc)),
           fmt(s, ".2f") + ("" if n == "examhub" else ratio(s, hub_small)),
           fmt(l, ".2f") + ("" if n == "examhub" else ratio(l, hub_large)),
           fmt(e and e["clientCpuSeconds"] / e["seconds"], ".2f") + " cores"]
    print("| " + " | ".join(row) + " |")
p = load("examhub", "ping")
if p:
    pc = per_cpu(p)
    print(f"| examhub `ping` op | {fmt(p['messagesPerSecond'])} | {fmt(p99(p, 'ping'), '.2f')} | {fmt(pc)} | {fmt(1e6 / pc if pc else None, '.2f')} | | | | | | | {p['clientCpuSeconds'] / p['seconds']:.2f} cores |")
PY
