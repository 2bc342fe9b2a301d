"""Fixtures of the conformance suite (WebSocket conformance and the hostile-input corpus): real `examhub serve`
processes started with Tests/Integration's `Hub`, and a summary at the end of the session:

    conformance: N cases run, M passed        (with a table by Autobahn section and endpoint)
    hostile corpus: N cases run, M passed
"""
from __future__ import annotations

import collections
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE / "cases", HERE.parent / "Integration"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from hubclient import Hub  # noqa: E402
from run import CONFORMANCE_ENV  # noqa: E402

# The hostile hub: a large burst so that ordinary cases and the subscription flood are never rate limited, and a
# slow refill (one token per 200 ms) so that a flood's refusals come in a row however slowly a loaded machine
# runs the hub (each refill admits a message and restarts the count of refusals in a row).
HOSTILE_ENV = {
    "EXAMHUB_RATE_LIMIT": "5",
    "EXAMHUB_RATE_BURST": "2200",
    "EXAMHUB_RATE_CLOSE_AFTER": "20",
    "EXAMHUB_MAX_SUBSCRIPTIONS": "64",
    "EXAMHUB_AUTH_TIMEOUT": "3",
}


class _Hubs:
    def __init__(self, base: Path):
        self.base = base
        self.hubs: list[Hub] = []

    def start(self, name: str, env: dict[str, str]) -> Hub:
        hub = Hub(self.base / name, env=env)
        self.hubs.append(hub)
        return hub

    def stop_all(self) -> None:
        problems = []
        for hub in self.hubs:
            rc = hub.stop()
            if rc != 0:
                problems.append(f"hub on port {hub.port} exited {rc} after SIGTERM; stderr:\n{hub.stderr_tail()}")
        assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def conformance_hub(tmp_path_factory):
    """A dev hub with default limits except the per-socket rate limit, raised for section 9's floods."""
    hubs = _Hubs(tmp_path_factory.mktemp("conformance"))
    yield hubs.start("conformance", CONFORMANCE_ENV)
    hubs.stop_all()


@pytest.fixture(scope="session")
def hostile_hub(tmp_path_factory):
    """A dev hub with the corpus's limits (HOSTILE_ENV)."""
    hubs = _Hubs(tmp_path_factory.mktemp("hostile"))
    hub = hubs.start("hostile", HOSTILE_ENV)
    hub.limits = dict(HOSTILE_ENV)
    yield hub
    hubs.stop_all()


# ----------------------------------------------------------------------------------------------- summary

_results: dict[str, dict] = {"conformance": {}, "hostile": {}}
_non_strict: list[str] = []


def pytest_runtest_logreport(report):
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    path = report.nodeid.split("::")[0]
    if path.endswith("test_ws_conformance.py"):
        kind = "conformance"
    elif path.endswith("test_hostile_corpus.py"):
        kind = "hostile"
    else:
        return
    if "[" not in report.nodeid:
        return
    _results[kind][report.nodeid] = report.passed
    if dict(report.user_properties).get("grade") == "NON-STRICT":
        _non_strict.append(report.nodeid.rsplit("[", 1)[1].rstrip("]"))


def pytest_terminal_summary(terminalreporter):
    conf = _results["conformance"]
    if conf:
        by = collections.defaultdict(lambda: [0, 0])
        for nodeid, passed in conf.items():
            param = nodeid.rsplit("[", 1)[1].rstrip("]")  # "echo-6.3.1"
            endpoint, case_id = param.split("-", 1)
            key = (case_id.split(".", 1)[0], endpoint)
            by[key][0] += 1
            by[key][1] += int(passed)
        tr = terminalreporter
        tr.write_line("")
        tr.write_line(f"{'section':<8} {'/v1/echo':>12} {'/v1/socket':>12}")
        for s in sorted({s for s, _ in by}, key=lambda s: (s.isdigit(), int(s) if s.isdigit() else 0)):
            cells = [f"{by[(s, ep)][1]}/{by[(s, ep)][0]}" if (s, ep) in by else "-" for ep in ("echo", "socket")]
            tr.write_line(f"{s:<8} {cells[0]:>12} {cells[1]:>12}")
        tr.write_line(f"conformance: {len(conf)} cases run, {sum(conf.values())} passed"
                      + (f" ({len(_non_strict)} of them NON-STRICT: {', '.join(_non_strict)})" if _non_strict else ""))
    hostile = _results["hostile"]
    if hostile:
        by_kind = collections.defaultdict(lambda: [0, 0])
        for nodeid, passed in hostile.items():
            kind = nodeid.rsplit("[", 1)[1].rstrip("]").rsplit("-", 1)[0]  # "save-186" -> "save"
            by_kind[kind][0] += 1
            by_kind[kind][1] += int(passed)
        terminalreporter.write_line("hostile corpus by kind: " + ", ".join(
            f"{k} {ok}/{n}" for k, (n, ok) in sorted(by_kind.items())))
        terminalreporter.write_line(f"hostile corpus: {len(hostile)} cases run, {sum(hostile.values())} passed")
