"""Per-socket and per-node limits: rate limit (rate_limited, then 4008), subscriptions per socket (too_large),
connections per node (HTTP 503), heartbeats."""
from __future__ import annotations

import json
import time

import pytest
from websockets.exceptions import InvalidStatus

import contract
from hubclient import refused_status, validate_reply
from test_channels import uid


@pytest.fixture
def rate_hub(start_hub):
    return start_hub({"EXAMHUB_RATE_LIMIT": "5", "EXAMHUB_RATE_BURST": "5", "EXAMHUB_RATE_CLOSE_AFTER": "4"})


def test_rate_limit_refuses_then_closes_with_4008(rate_hub):
    """Burst 5, then each refused message is answered rate_limited; after 4 refusals in a row the next one closes
    the socket with 4008. The 12 pings go out in one TCP write so no token refills in between."""
    hub = rate_hub
    with hub.connect(bearer=hub.token("proctor", "p-calm"), label="calm") as calm:
        fast = hub.raw(headers={"Authorization": f"Bearer {hub.token('proctor', 'p-fast')}"})
        try:
            fast.send_texts(*[{"op": "ping", "id": i} for i in range(1, 13)])
            frames = fast.expect_close(4008)
        finally:
            fast.close()
        replies = [json.loads(payload) for opcode, payload in frames if opcode == 0x1]
        assert [r["id"] for r in replies] == list(range(1, 10)), replies
        for r in replies:
            validate_reply("ping", r)
        assert all(r["ok"] for r in replies[:5])
        assert all(not r["ok"] and r["error"]["code"] == "rate_limited" for r in replies[5:])
        calm.ping()  # the limit is per socket


def test_rate_limited_messages_without_id_get_error_events_and_slowing_down_recovers(rate_hub):
    hub = rate_hub
    raw = hub.raw(headers={"Authorization": f"Bearer {hub.token('proctor', 'p-burst')}"})
    try:
        raw.send_texts(*[{"op": "ping"} for _ in range(5)],  # the burst, no replies
                       {"op": "ping"},  # refused, no id: an error event
                       {"op": "ping", "id": 77})  # refused, with id: a reply
        event = raw.recv_json()
        contract.validate_event(event)
        assert event["ch"] == "conn" and event["type"] == "error" and event["data"]["code"] == "rate_limited"
        r = raw.reply(77)
        validate_reply("ping", r)
        assert r["ok"] is False and r["error"]["code"] == "rate_limited"
        time.sleep(0.45)  # 5 per second: two tokens back
        for rid in (78, 79):  # refusals in a row reset: the socket stays open
            raw.send_texts({"op": "ping", "id": rid})
            assert raw.reply(rid)["ok"] is True
    finally:
        raw.close()


def test_subscription_limit_is_too_large(tight_hub):
    """EXAMHUB_MAX_SUBSCRIPTIONS=3."""
    channels = [f"exam:{uid('e')}:proctor" for _ in range(5)]
    with tight_hub.client("proctor", "p-many") as p:
        for ch in channels[:3]:
            p.ok("subscribe", ch=ch)
        assert p.error("subscribe", "too_large", ch=channels[3])["message"]
        p.ok("subscribe", ch=channels[0])  # already subscribed: not a new one
        p.ok("unsubscribe", ch=channels[1])
        p.ok("subscribe", ch=channels[3])
        p.error("subscribe", "too_large", ch=channels[4])
        p.ping()


def test_subscription_limit_holds_for_pipelined_subscribes(tight_hub):
    """Subscribes to attempt channels look the attempt up in the store before they count: five sent at once
    must still yield at most three subscriptions (EXAMHUB_MAX_SUBSCRIPTIONS=3)."""
    hub = tight_hub
    attempts = [uid("a") for _ in range(5)]
    for a in attempts:
        hub.insert_attempt(a, "t1", uid("e"), "c-pipe")
    raw = hub.raw(headers={"Authorization": f"Bearer {hub.token('candidate', 'c-pipe')}"})
    try:
        raw.send_texts(*[{"op": "subscribe", "id": i + 1, "ch": f"attempt:{a}"} for i, a in enumerate(attempts)])
        replies = {}
        while len(replies) < 5:
            frame = raw.recv_json()
            replies[frame["id"]] = frame
            validate_reply("subscribe", frame)
        ok = [rid for rid, r in replies.items() if r["ok"]]
        refused = [r["error"]["code"] for r in replies.values() if not r["ok"]]
        assert len(ok) <= 3 and refused == ["too_large"] * (5 - len(ok)), (
            f"{len(ok)} subscriptions accepted with EXAMHUB_MAX_SUBSCRIPTIONS=3: {sorted(replies.items())}")
    finally:
        raw.close()


def test_connection_limit_refuses_upgrades_with_503(start_hub):
    hub = start_hub({"EXAMHUB_MAX_CONNECTIONS": "2"})
    with hub.client("proctor", "p1") as a, hub.client("proctor", "p2") as b:
        with pytest.raises(InvalidStatus) as excinfo:
            hub.ws()
        status, body = refused_status(excinfo)
        assert status == 503
        contract.validate("schemas/http/error.json", body)
        assert body["error"]["code"] == "unavailable"
        status, _, _ = hub.http("GET", "/healthz")  # plain HTTP is not a socket
        assert status == 200
        a.ping()
        b.close()
    deadline = time.monotonic() + 3
    while True:  # the closed socket's slot is released
        try:
            with hub.client("proctor", "p3") as c:
                c.ping()
            break
        except InvalidStatus:
            assert time.monotonic() < deadline, "a closed socket's slot was not released"
            time.sleep(0.05)


def test_server_pings_every_heartbeat(tight_hub):
    """EXAMHUB_HEARTBEAT_SEC=1: hello says so, and a WebSocket ping arrives about every second."""
    hub = tight_hub
    raw = hub.raw()
    try:
        raw.send_texts({"op": "hello", "id": 1, "token": hub.token("proctor", "p-hb")})
        hello = raw.reply(1)
        validate_reply("hello", hello)
        assert hello["data"]["heartbeatSec"] == 1
        started = time.monotonic()
        fin, opcode, _ = raw.recv_frame(timeout=2.5)
        assert opcode == 0x9, f"expected a ping, got opcode {opcode}"
        assert time.monotonic() - started < 2
        raw.send_frame(0xA, b"")
    finally:
        raw.close()


def test_silent_peer_is_closed_after_two_heartbeats(tight_hub):
    hub = tight_hub
    raw = hub.raw(headers={"Authorization": f"Bearer {hub.token('proctor', 'p-dead')}"})
    started = time.monotonic()
    try:
        while True:  # never answer the pings
            try:
                raw.recv_frame(timeout=6)
            except EOFError:
                break
            except ConnectionResetError:
                break
        assert 1.5 < time.monotonic() - started < 5.5
    finally:
        raw.close()
    with hub.client("proctor", "p-alive") as c:
        c.ping()


def test_oversized_text_frame_on_default_limit_is_1009(hub):
    """The default EXAMHUB_MAX_MESSAGE_BYTES is 256 KiB."""
    with hub.client("proctor", "p-huge") as c, hub.client("proctor", "p-by") as by:
        c.send(json.dumps({"op": "ping", "id": 1, "pad": "y" * (262_144 + 10)}))
        c.expect_close(1009)
        by.ping()
    with hub.client("proctor", "p-big-ok") as c:
        c.send(json.dumps({"op": "ping", "id": 2, "pad": "y" * 200_000}))
        assert c.reply(2, "ping")["ok"] is True


def test_idle_http_connection_is_closed_after_the_header_timeout(start_hub):
    """EXAMHUB_HEADER_TIMEOUT=0.5: a connection that sends no request head is closed (slow loris); an upgraded
    socket is not subject to it."""
    import socket

    hub = start_hub({"EXAMHUB_HEADER_TIMEOUT": "0.5"})
    with hub.client("proctor", "p-ws") as ws:
        idle = socket.create_connection((hub.host, hub.port), timeout=5)
        try:
            started = time.monotonic()
            idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            assert idle.recv(1024) == b""  # closed by the hub
            assert 0.3 < time.monotonic() - started < 3
        finally:
            idle.close()
        ws.ping()  # the upgraded socket outlived the header timeout


def test_too_many_frames_while_hello_is_verified_are_each_answered_once(hub):
    """Frames queued behind hello are bounded; the ones over the bound get rate_limited, none is lost."""
    raw = hub.raw()
    try:
        raw.send_texts({"op": "hello", "id": 1, "token": hub.token("proctor", "p-queue")},
                       *[{"op": "ping", "id": i} for i in range(2, 62)])
        answered = {}
        while len(answered) < 61:
            frame = raw.recv_json()
            assert frame["op"] == "reply" and frame["id"] not in answered, frame
            validate_reply("hello" if frame["id"] == 1 else "ping", frame)
            answered[frame["id"]] = frame
        assert answered[1]["ok"] is True
        codes = {r["error"]["code"] for r in answered.values() if not r["ok"]}
        assert codes <= {"rate_limited"}, codes
    finally:
        raw.close()
