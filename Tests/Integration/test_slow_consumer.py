"""Slow-consumer policy (issue 2): a subscriber that stops reading must not grow the hub's memory or stall
anyone else. Its unsent bytes are bounded by EXAMHUB_MAX_OUTBOUND; past that it is closed with 1008 (it may
reconnect and recover with `since`), while a reading subscriber gets every event and the publisher goes on."""
from __future__ import annotations

import json
import re
import socket
import time


def metric(hub, name: str) -> float:
    _, _, body = hub.http("GET", "/metrics")
    m = re.search(rf"^{name} (\S+)$", body.decode(), re.M)
    return float(m.group(1)) if m else 0.0


def test_a_subscriber_that_stops_reading_is_closed_and_nobody_else_suffers(start_hub):
    hub = start_hub({"EXAMHUB_WRITE_LOW": "16384", "EXAMHUB_WRITE_HIGH": "65536", "EXAMHUB_MAX_OUTBOUND": "262144"})
    slow = hub.raw(headers={"Authorization": f"Bearer {hub.token('proctor', 'slow')}"})
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.send_text(json.dumps({"op": "subscribe", "id": 1, "ch": "exam:e1:proctor"}))
    assert slow.recv_json()["ok"] is True
    reader = hub.client("proctor", "reader")
    reader.ok("subscribe", ch="exam:e1:proctor")
    publisher = hub.client("service", "svc")

    pad = "x" * 60_000
    events = 0
    started = time.monotonic()
    # Publish until the hub cuts the slow socket off (loopback buffers hold a few MB before NIO sees it unwritable).
    while metric(hub, "examhub_slow_consumer_closes_total") < 1:
        assert events < 600, "no slow-consumer close after 36 MB"
        for _ in range(10):
            data = {"attemptId": "a1", "code": "paste", "severity": "info", "at": "2026-11-23T10:00:00.000Z",
                    "evidence": {"n": events, "pad": pad}}
            publisher.ok("publish", ch="exam:e1:proctor", type="flag.raised", data=data)
            seen = reader.recv(timeout=10)
            assert seen["type"] == "flag.raised" and seen["data"]["evidence"]["n"] == events
            events += 1
    print(f"slow consumer closed after {events} events of 60 KB in {time.monotonic() - started:.1f} s")

    # The hub let go of the slow socket (close 1008, then the TCP connection after a second's grace): only the
    # reader and the publisher are left open.
    deadline = time.monotonic() + 10
    while metric(hub, "examhub_connections_open") != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert metric(hub, "examhub_connections_open") == 2
    slow.sock.close()
    publisher.ping()
    reader.ping()
