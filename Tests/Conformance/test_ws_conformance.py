"""WebSocket conformance (RFC 6455): the opening handshake (section "H", cases/handshake.py) and Autobahn|Testsuite
sections 1-7, 9 and 10 (cases/autobahn.py), as data, each case run on the plain echo endpoint `/v1/echo` and on
the protocol endpoint `/v1/socket`."""
from __future__ import annotations

import pytest

import autobahn
import handshake
from runner import ENDPOINTS, run_case, run_handshake

PARAMS = [(ep, c) for c in autobahn.CASES for ep in ENDPOINTS]


@pytest.mark.parametrize("endpoint,case", PARAMS, ids=[f"{ep}-{c['id']}" for ep, c in PARAMS])
def test_conformance_case(conformance_hub, endpoint, case, record_property):
    token = conformance_hub.token("proctor", "p-conformance")
    outcome = run_case(case, endpoint, conformance_hub.host, conformance_hub.port, token)
    record_property("grade", outcome.grade)
    assert outcome.passed, outcome.detail
    assert conformance_hub.running, f"case {case['id']} on /v1/{endpoint}: the hub is no longer running"


HANDSHAKE = [(ep, c) for c in handshake.CASES for ep in ENDPOINTS]


@pytest.mark.parametrize("endpoint,case", HANDSHAKE, ids=[f"{ep}-{c['id']}" for ep, c in HANDSHAKE])
def test_handshake_case(conformance_hub, endpoint, case):
    outcome = run_handshake(case, endpoint, conformance_hub.host, conformance_hub.port)
    assert outcome.passed, outcome.detail
