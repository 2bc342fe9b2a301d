#!/usr/bin/env bash
# Outbox throughput (issue 6): events/s from the outbox to a local webhook receiver (signatures checked), on SQLite
# with one worker and on PostgreSQL with one and two worker processes. Usage:
#   swift build -c release --product examhub && bash LoadTests/bench-outbox.sh [events]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release}
EVENTS=${1:-20000}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); workers, database and receiver share them"
python3 LoadTests/outbox/bench_outbox.py --bin "$BIN/examhub" --events "$EVENTS" --workers 1
python3 LoadTests/outbox/bench_outbox.py --bin "$BIN/examhub" --events "$EVENTS" --workers 1 --postgres
python3 LoadTests/outbox/bench_outbox.py --bin "$BIN/examhub" --events "$EVENTS" --workers 2 --postgres
