#!/usr/bin/env bash
# The whole test suite: Swift unit tests, the contract checks of Protocols/, the end-to-end tests that start
# the real `examhub` binary on port 0 and drive it over real sockets, and the browser tests (headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== swift build"
swift build --build-tests
echo "== swift test"
swift test --skip-build
echo "== contract, integration, conformance, browser and deployment-file tests"
EXAMHUB_BIN="$(swift build --show-bin-path)/examhub" python3 -m pytest -q Tests/Contract Tests/Integration Tests/Conformance Tests/Fuzz \
    Tests/Browser Tests/Deploy
