"""Standalone conformance run: starts a dev hub (like the `conformance_hub` fixture), runs every case of
cases/handshake.py and cases/autobahn.py on /v1/echo and /v1/socket, and prints a table by section and the failures.

    EXAMHUB_BIN=/tmp/conf-bin/examhub python3 Tests/Conformance/run.py [-k 6.4] [--endpoint echo]

Exit code 0 when every case passed.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "cases"), str(HERE.parent / "Integration")]

import autobahn  # noqa: E402
import handshake  # noqa: E402
from hubclient import Hub  # noqa: E402
from runner import ENDPOINTS, run_case, run_handshake  # noqa: E402

# The conformance hub: per-socket rate limits raised so that section 9's pipelined messages are not refused
# (the limits themselves are the hostile corpus's business).
CONFORMANCE_ENV = {"EXAMHUB_RATE_LIMIT": "1000000", "EXAMHUB_RATE_BURST": "1000000"}


def section_table(outcomes) -> str:
    by = collections.OrderedDict()
    for o in outcomes:
        key = (autobahn.section(o.case_id), o.endpoint)
        run, ok = by.get(key, (0, 0))
        by[key] = (run + 1, ok + int(o.passed))
    sections = sorted({s for s, _ in by}, key=lambda s: (s.isdigit(), int(s) if s.isdigit() else 0))
    lines = [f"{'section':<8} {'/v1/echo':>12} {'/v1/socket':>12}"]
    for s in sections:
        cells = []
        for ep in ENDPOINTS:
            run, ok = by.get((s, ep), (0, 0))
            cells.append(f"{ok}/{run}" if run else "-")
        lines.append(f"{s:<8} {cells[0]:>12} {cells[1]:>12}")
    total = len(outcomes)
    passed = sum(o.passed for o in outcomes)
    non_strict = [f"{o.endpoint}-{o.case_id}" for o in outcomes if o.grade == "NON-STRICT"]
    lines.append(f"conformance: {total} cases run, {passed} passed"
                 + (f" ({len(non_strict)} of them NON-STRICT: {', '.join(non_strict)})" if non_strict else ""))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="", help="only case ids starting with this")
    ap.add_argument("--endpoint", choices=list(ENDPOINTS), action="append")
    args = ap.parse_args()
    endpoints = args.endpoint or list(ENDPOINTS)
    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub(Path(tmp) / "hub", env=CONFORMANCE_ENV)
        outcomes = []
        started = time.monotonic()
        try:
            token = hub.token("proctor", "p-conformance")
            for case in handshake.CASES:
                if not case["id"].startswith(args.k):
                    continue
                for ep in endpoints:
                    o = run_handshake(case, ep, hub.host, hub.port)
                    outcomes.append(o)
                    if not o.passed:
                        print(f"FAIL {o.detail}")
            for case in autobahn.CASES:
                if not case["id"].startswith(args.k):
                    continue
                for ep in endpoints:
                    o = run_case(case, ep, hub.host, hub.port, token)
                    outcomes.append(o)
                    if not o.passed:
                        print(f"FAIL {o.detail}")
        finally:
            rc = hub.stop()
        print(section_table(outcomes))
        print(f"({time.monotonic() - started:.1f}s; hub exited {rc})")
        if rc != 0:
            print(hub.stderr_tail())
    return 0 if all(o.passed for o in outcomes) and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
