#!/usr/bin/env bash
# Proctoring benchmark (issue 4): 10,000 candidates each sending one telemetry event per second while 50 proctors
# watch their rooms (200 candidates each). Prints events ingested per second, the hub's CPU use while measuring,
# telemetry ack latency, and the latency from a telemetry frame to the `flag.raised` it causes at the proctor
# (5% of frames raise a flag). Hub and load tester share this machine's cores.
# Usage: swift build -c release && bash LoadTests/bench-proctoring.sh [candidates] [proctors]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release}
CANDIDATES=${1:-10000}
PROCTORS=${2:-50}
PORT=${PORT:-18290}
DURATION=${DURATION:-20}
SECRET=bench-secret-0123456789abcdef0123456789
TMP=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
wait_for() { for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timeout waiting for $2" >&2; exit 1; }

EXAMHUB_PORT=$PORT EXAMHUB_DATABASE_URL="sqlite://$TMP/bench.db" EXAMHUB_JWT_SECRET=$SECRET EXAMHUB_DEV=0 \
    EXAMHUB_MAX_CONNECTIONS=200000 "$BIN/examhub" serve > "$TMP/hub.out" 2> "$TMP/hub.err" &
HUB=$!
wait_for "$TMP/hub.out" "listening on"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); hub and load tester on the same cores"
python3 - "$HUB" "$BIN/examhub-load" "$PORT" "$SECRET" "$CANDIDATES" "$PROCTORS" "$DURATION" <<'PY'
import json, os, subprocess, sys, time
hub, load, port, secret, n, p, duration = sys.argv[1:8]
tick = os.sysconf("SC_CLK_TCK")
def cpu(pid=hub):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
warmup = 3.0
proc = subprocess.Popen(["stdbuf", "-oL", load, "proctoring", "--port", port, "--secret", secret, "--candidates", n, "--proctors", p,
                         "--duration", duration, "--warmup", str(warmup), "--threads", os.environ.get("LOAD_THREADS", "1")], stdout=subprocess.PIPE, text=True)
c0 = t0 = None
result = None
for line in proc.stdout:
    print(line.rstrip(), flush=True)
    if "candidates joined" in line:
        time.sleep(warmup)
        c0, l0, t0 = cpu(), cpu(proc.pid), time.monotonic()
    if line.startswith("{"):
        result = json.loads(line)
        c1, l1, t1 = cpu(), cpu(proc.pid), time.monotonic()
proc.wait()
assert result is not None and c0 is not None, "the load run failed"
cores = (c1 - c0) / (t1 - t0)
load_cores = (l1 - l0) / (t1 - t0)
print()
print("| candidates | proctors | events/s ingested | hub CPU (cores) | load tester CPU (cores) | events per hub CPU-s | ack p50 / p99 ms | flag.raised/s | telemetry->flag p50 / p99 / max ms | errors |")
print("|---|---|---|---|---|---|---|---|---|---|")
print(f"| {result['candidates']:,} | {result['proctors']} | {result['eventsPerSecond']:,.0f} | {cores:.2f} | {load_cores:.2f} | "
      f"{result['eventsPerSecond'] / max(cores, 1e-9):,.0f} | {result['ackP50Ms']:.2f} / {result['ackP99Ms']:.2f} | "
      f"{result['flagsPerSecond']:,.0f} | {result['flagP50Ms']:.2f} / {result['flagP99Ms']:.2f} / {result['flagMaxMs']:.2f} | "
      f"{result['errors'] + result['unmatchedFlags']} |")
PY
kill -TERM $HUB; wait $HUB || true
