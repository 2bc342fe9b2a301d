#!/usr/bin/env bash
# Fuzzes the parsers the hub runs on untrusted input, with libFuzzer and AddressSanitizer:
#   envelope   every socket message (Envelope.decode over the strict JSON parser)
#   intents    an intent YAML file (IntentCatalog.parse)
#   profile    a proctoring profile (ProctoringProfile(jsonText:)), then the profile run on a trace
#   telemetry  a telemetry batch (TelemetryBatch) run through the default profile
# Usage: bash Tests/Fuzz/run.sh [seconds per target, default 60] [targets...]
# Crashes land in Tests/Fuzz/regressions/<target>/ (commit them: Tests/Fuzz/test_regressions.py replays them).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(envelope intents profile telemetry)
SCRATCH=.build-fuzz
swift build -c release --product examhub-fuzz --scratch-path "$SCRATCH" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -parse-as-library
BIN=$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/examhub-fuzz
for target in "${TARGETS[@]}"; do
    corpus=$(mktemp -d)
    mkdir -p "Tests/Fuzz/regressions/$target"
    cp Tests/Fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
    echo "== $target for ${SECONDS_EACH}s"
    EXAMHUB_FUZZ_TARGET=$target "$BIN" "$corpus" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
        -artifact_prefix="Tests/Fuzz/regressions/$target/" -print_final_stats=1 2>&1 | grep -E "^#|stat::|ERROR|SUMMARY|Done" | tail -6
    rm -rf "$corpus"
done
