"""HTTP routes of this node (PROTOCOL.md sections 1 and 6): health, readiness, metrics, the socket route without
an upgrade, Origin checks, the dev echo socket, JSON errors."""
from __future__ import annotations

import json
import re
import time

import pytest
from websockets.exceptions import InvalidStatus

import contract
from hubclient import PROD_ORIGINS, Client, refused_status


def json_body(headers: dict, body: bytes):
    assert headers.get("content-type", "").startswith("application/json"), headers
    return json.loads(body)


def assert_json_error(status: int, headers: dict, body: bytes, expected_status: int, code: str) -> dict:
    assert status == expected_status, (status, body)
    doc = json_body(headers, body)
    contract.validate("schemas/http/error.json", doc)
    assert doc["error"]["code"] == code and doc["error"]["message"], doc
    return doc


def test_healthz(hub):
    status, headers, body = hub.http("GET", "/healthz")
    assert status == 200
    assert json_body(headers, body) == {"status": "ok"}


def test_readyz(hub):
    status, headers, body = hub.http("GET", "/readyz")
    assert status == 200
    doc = json_body(headers, body)
    contract.validate("schemas/http/ready.json", doc)
    assert doc == {"ready": True, "store": True, "draining": False}


def test_metrics(hub):
    with hub.client("proctor", "p-metrics") as c:
        c.ping()
        c.send("{")  # one error, counted
        c.event()
        status, headers, body = hub.http("GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    text = body.decode()
    for name in ["examhub_connections_total", "examhub_connections_open", "examhub_messages_in_total",
                 "examhub_events_published_total", "examhub_errors_total"]:
        assert re.search(rf"^{name}(\{{[^}}]*\}})? \d", text, re.M), f"{name} missing:\n{text}"
    total = re.search(r"^examhub_connections_total (\d+)", text, re.M)
    assert total and int(total.group(1)) >= 1
    assert re.search(r'^examhub_errors_total\{code="bad_request"\} [1-9]', text, re.M), text


def test_socket_route_without_upgrade_is_400_json(hub):
    status, headers, body = hub.http("GET", "/v1/socket")
    assert_json_error(status, headers, body, 400, "bad_request")


def test_unknown_route_is_404_json(hub):
    for path in ["/", "/nope", "/v1/exams/x/y/z", "/healthz/extra"]:
        status, headers, body = hub.http("GET", path)
        assert_json_error(status, headers, body, 404, "not_found")


def test_wrong_method_on_a_known_route_is_405_json(hub):
    status, headers, body = hub.http("POST", "/healthz", body=b"{}")
    assert_json_error(status, headers, body, 405, "bad_request")


def test_upgrade_on_unknown_route_is_404(hub):
    with pytest.raises(InvalidStatus) as excinfo:
        hub.ws("/v1/nope")
    status, body = refused_status(excinfo)
    assert status == 404
    contract.validate("schemas/http/error.json", body)


def test_query_string_is_ignored_on_the_socket_route(hub):
    with Client(hub.ws("/v1/socket?client=test&v=1")) as c:
        c.error("ping", "unauthorized")
        c.hello(hub.token())
        c.ping()


def test_dev_mode_accepts_any_origin(hub):
    with hub.connect(origin="https://anything.example") as c:
        c.hello(hub.token())
        c.ping()


def test_echo_socket_in_dev_mode(hub):
    ws = hub.ws("/v1/echo")
    try:
        for message in ["hello", "{not json at all", "\u20ac" * 100, b"\x00\x01\x02binary"]:
            ws.send(message)
            assert ws.recv(timeout=5) == message
    finally:
        ws.close()


def test_echo_route_without_upgrade_is_400_in_dev_mode(hub):
    status, headers, body = hub.http("GET", "/v1/echo")
    assert_json_error(status, headers, body, 400, "bad_request")


# ----------------------------------------------------------------------------------------------- prod mode


def test_echo_is_404_when_not_in_dev_mode(prod_hub):
    status, headers, body = prod_hub.http("GET", "/v1/echo")
    assert_json_error(status, headers, body, 404, "not_found")
    with pytest.raises(InvalidStatus) as excinfo:
        prod_hub.ws("/v1/echo", origin=PROD_ORIGINS[0])
    assert refused_status(excinfo)[0] == 404


@pytest.mark.parametrize("origin", ["https://evil.example", "https://exam.example.evil.example",
                                    "http://exam.example", "https://exam.example:8443", "null", "*"])
def test_refused_origin_is_403_without_upgrade(prod_hub, origin):
    with pytest.raises(InvalidStatus) as excinfo:
        prod_hub.ws(origin=origin)
    status, body = refused_status(excinfo)
    assert status == 403
    contract.validate("schemas/http/error.json", body)
    assert body["error"]["code"] == "forbidden"
    # Also refused when the upgrade carries a valid bearer token.
    with pytest.raises(InvalidStatus) as excinfo:
        prod_hub.ws(origin=origin, headers={"Authorization": f"Bearer {prod_hub.token('admin', 'a1')}"})
    assert refused_status(excinfo)[0] == 403


@pytest.mark.parametrize("origin", PROD_ORIGINS)
def test_allowed_origin_upgrades(prod_hub, origin):
    with prod_hub.connect(origin=origin) as c:
        c.hello(prod_hub.token("proctor", "p-origin"))
        c.ping()


def test_no_origin_header_is_a_non_browser_client_and_upgrades(prod_hub):
    with prod_hub.connect(bearer=prod_hub.token("service", "s-cli")) as c:
        c.ping()


def test_prod_readyz_and_unknown_route(prod_hub):
    status, headers, body = prod_hub.http("GET", "/readyz")
    assert status == 200 and json_body(headers, body)["ready"] is True
    status, headers, body = prod_hub.http("GET", "/admin")
    assert_json_error(status, headers, body, 404, "not_found")


def test_open_connections_gauge_follows_sockets(start_hub):
    hub = start_hub()

    def gauge() -> int:
        text = hub.http("GET", "/metrics")[2].decode()
        m = re.search(r"^examhub_connections_open (\d+)", text, re.M)
        return int(m.group(1)) if m else 0

    clients = [hub.client("proctor", f"p{i}") for i in range(3)]
    assert gauge() == 3
    for c in clients:
        c.close()
    deadline = time.monotonic() + 3
    while gauge() != 0:
        assert time.monotonic() < deadline, f"examhub_connections_open stuck at {gauge()}"
        time.sleep(0.05)
