"""Connecting and authenticating (PROTOCOL.md sections 1 and 3: hello, ping, refresh; close code 4001)."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
from websockets.exceptions import InvalidStatus

import contract
from hubclient import SUBPROTOCOL, b64u, b64u_decode, claims, jwt_hs256, jwt_none, refused_status, validate_reply


def server_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def test_hello_reply_fields(hub):
    token = hub.token("proctor", "p-hello", "t1", exams=["e1"], ttl=600)
    exp = json.loads(b64u_decode(token.split(".")[1]))["exp"]
    with hub.connect() as a, hub.connect() as b:
        data = a.hello(token)  # validated against ops/hello.reply.json
        assert data["user"] == {"id": "p-hello", "tenant": "t1", "role": "proctor"}
        assert isinstance(data["connId"], str) and data["connId"]
        assert abs(server_time(data["serverTime"]) - time.time()) < 30
        assert data["heartbeatSec"] == 25  # EXAMHUB_HEARTBEAT_SEC default
        assert data["exp"] == exp
        other = b.hello(hub.token("candidate", "c-hello", "t1"))
        assert other["connId"] != data["connId"]
        assert other["user"] == {"id": "c-hello", "tenant": "t1", "role": "candidate"}


def test_ping(hub):
    with hub.client("candidate", "c-ping") as c:
        before = time.time()
        data = c.ping()
        assert abs(server_time(data["serverTime"]) - before) < 30
        assert c.ok("ping")["serverTime"] >= data["serverTime"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_authorization_on_upgrade(hub, scheme):
    token = hub.token("admin", "a-bearer", "t1")
    with hub.connect(headers={"Authorization": f"{scheme} {token}"}) as c:
        c.ping()  # authenticated without hello
        err = c.error("hello", "bad_request", token=token)
        assert "already authenticated" in err["message"]
        c.ok("subscribe", ch="exam:e1:proctor")


@pytest.mark.parametrize("authorization", [
    "Bearer not-a-jwt",
    "Bearer {expired}",
    "Bearer {wrong_key}",
    "Basic dXNlcjpwYXNz",
])
def test_bad_bearer_token_refused_with_401(hub, authorization):
    authorization = authorization.format(
        expired=hub.token("admin", "a1", ttl=-60),
        wrong_key=hub.token("admin", "a1", secret="another-secret-0123456789abcdef0123456789abcdef"))
    with pytest.raises(InvalidStatus) as excinfo:
        hub.ws(headers={"Authorization": authorization})
    status, body = refused_status(excinfo)
    assert status == 401
    contract.validate("schemas/http/error.json", body)
    assert body["error"]["code"] == "unauthorized"


def test_subprotocol_selected_when_offered(hub):
    with hub.connect(subprotocols=["other.v9", SUBPROTOCOL]) as c:
        assert c.ws.subprotocol == SUBPROTOCOL
        c.hello(hub.token("candidate", "c-sp"))
        c.ping()


def test_no_subprotocol_offered_still_works(hub):
    with hub.connect() as c:
        assert c.ws.subprotocol is None
        c.hello(hub.token("candidate", "c-nosp"))
        c.ping()


def test_unknown_subprotocol_only_is_not_selected(hub):
    with hub.connect(subprotocols=["other.v9"]) as c:
        assert c.ws.subprotocol is None
        c.hello(hub.token("candidate", "c-othersp"))
        c.ping()


def test_ops_before_hello_are_unauthorized(hub):
    with hub.connect() as c:
        for op, fields in [("ping", {}), ("subscribe", {"ch": "exam:e1:proctor"}),
                           ("unsubscribe", {"ch": "exam:e1:proctor"}), ("refresh", {"token": hub.token()}),
                           ("publish", {"ch": "exam:e1:proctor", "type": "risk.changed", "data": {}}),
                           ("attempt.join", {"examId": "e1"}), ("no.such.op", {})]:
            c.error(op, "unauthorized", **fields)
        # The socket is still usable: hello now works.
        c.hello(hub.token("proctor", "p-late"))
        c.ping()


def bad_token(case: str, secret: str) -> str:
    good = claims("u-bad", "t1", "proctor")
    signed = jwt_hs256(good, secret)
    head, body, sig = signed.split(".")
    if case == "alg none":
        return jwt_none(good)
    if case == "alg none with the HS256 signature kept":
        return b64u(b'{"alg":"none","typ":"JWT"}') + f".{body}.{sig}"
    if case == "alg NONE":
        return b64u(b'{"alg":"NONE","typ":"JWT"}') + f".{body}."
    if case == "HS512 header":
        return jwt_hs256(good, secret, header={"alg": "HS512", "typ": "JWT"})
    if case == "wrong key":
        return jwt_hs256(good, "not-the-secret-0123456789abcdef0123456789abcdef")
    if case == "tampered payload":
        return f"{head}.{b64u(json.dumps({**good, 'role': 'admin'}).encode())}.{sig}"
    if case == "expired":
        return jwt_hs256(claims("u-bad", "t1", "proctor", ttl=-120), secret)
    if case == "not yet valid":
        return jwt_hs256({**good, "nbf": int(time.time()) + 3600}, secret)
    if case == "no exp":
        return jwt_hs256({k: v for k, v in good.items() if k != "exp"}, secret)
    if case == "no tenant":
        return jwt_hs256({k: v for k, v in good.items() if k != "tenant"}, secret)
    if case == "unknown role":
        return jwt_hs256({**good, "role": "superuser"}, secret)
    if case == "tenant not an id":
        return jwt_hs256({**good, "tenant": "t1/../t2"}, secret)
    if case == "empty sub":
        return jwt_hs256({**good, "sub": ""}, secret)
    if case == "garbage":
        return "garbage"
    if case == "empty":
        return ""
    raise ValueError(case)


BAD_TOKENS = ["alg none", "alg none with the HS256 signature kept", "alg NONE", "HS512 header", "wrong key",
              "tampered payload", "expired", "not yet valid", "no exp", "no tenant", "unknown role",
              "tenant not an id", "empty sub", "garbage", "empty"]


@pytest.mark.parametrize("case", BAD_TOKENS)
def test_refused_tokens(hub, case):
    with hub.connect() as c:
        err = c.error("hello", "unauthorized", token=bad_token(case, hub.secret))
        assert err["message"]
        c.error("ping", "unauthorized")  # still unauthenticated, still open
        c.hello(hub.token("proctor", "u-good"))  # a good token afterwards works
        c.ping()


def test_hello_token_of_wrong_type_is_bad_request(hub):
    with hub.connect() as c:
        c.error("hello", "bad_request", token=12345)
        c.error("hello", "bad_request")
        c.hello(hub.token())


def test_pipelined_requests_after_hello_are_answered_in_order(hub):
    """Frames that arrive while hello's token is verified (one TCP write) are handled after it, in order."""
    raw = hub.raw()
    try:
        raw.send_texts({"op": "hello", "id": 1, "token": hub.token("proctor", "p-pipe", exams=["e1"])},
                       {"op": "ping", "id": 2},
                       {"op": "subscribe", "id": 3, "ch": "exam:e1:proctor"},
                       {"op": "subscribe", "id": 4, "ch": "exam:e2:proctor"})
        for rid, op, ok in [(1, "hello", True), (2, "ping", True), (3, "subscribe", True), (4, "subscribe", False)]:
            r = raw.reply(rid)
            validate_reply(op, r)
            assert r["ok"] is ok, r
        assert r["error"]["code"] == "forbidden"
    finally:
        raw.close()


def test_pipelined_requests_after_a_failed_hello_still_get_replies(hub):
    """PROTOCOL.md section 2: when `id` is present the server answers exactly once. Requests that arrive while
    a hello's token is being verified, when that token is refused, must still be answered (unauthorized), not
    dropped. The three frames go out in one TCP write so the hub reads them while verifying."""
    raw = hub.raw()
    try:
        raw.send_texts({"op": "hello", "id": 1, "token": hub.token("proctor", "p-pipe", secret="x" * 48)},
                       {"op": "ping", "id": 2},
                       {"op": "subscribe", "id": 3, "ch": "exam:e1:proctor"})
        hello = raw.reply(1)
        validate_reply("hello", hello)
        assert hello["error"]["code"] == "unauthorized"
        for rid, op in [(2, "ping"), (3, "subscribe")]:
            try:
                r = raw.reply(rid, timeout=2)
            except TimeoutError:
                pytest.fail(f"request id {rid} ({op}) sent behind a refused hello got no reply: silently dropped")
            validate_reply(op, r)
            assert r["ok"] is False and r["error"]["code"] == "unauthorized", r
    finally:
        raw.close()


def test_refresh_extends_exp(hub):
    with hub.connect() as c:
        first = c.hello(hub.token("candidate", "c-refresh", ttl=60))["exp"]
        data = c.ok("refresh", token=hub.token("candidate", "c-refresh", ttl=7200))
        assert data["exp"] > first + 3600
        c.ping()


@pytest.mark.parametrize("change", [{"sub": "someone-else"}, {"tenant": "t2"}, {"role": "admin"}])
def test_refresh_to_another_identity_is_forbidden(hub, change):
    base = {"role": "candidate", "sub": "c-ident", "tenant": "t1"}
    with hub.connect() as c:
        exp = c.hello(hub.token(**base))["exp"]
        c.error("refresh", "forbidden", token=hub.token(**{**base, **change}))
        # Still the old identity and expiry: a later refresh of the same identity works.
        assert c.ok("refresh", token=hub.token(**base, ttl=7200))["exp"] > exp


@pytest.mark.parametrize("token", ["invalid", "expired", "wrong key", "alg none"])
def test_refresh_with_an_invalid_token_is_unauthorized(hub, token):
    bad = {
        "invalid": "a.b.c",
        "expired": hub.token("candidate", "c-r", ttl=-60),
        "wrong key": hub.token("candidate", "c-r", secret="y" * 48),
        "alg none": jwt_none(claims("c-r", "t1", "candidate")),
    }[token]
    with hub.client("candidate", "c-r") as c:
        c.error("refresh", "unauthorized", token=bad)
        c.ping()


def test_refresh_without_token_is_bad_request(hub):
    with hub.client("candidate", "c-r2") as c:
        c.error("refresh", "bad_request")
        c.error("refresh", "bad_request", token=["x"])
        c.ping()


def test_token_expiry_closes_with_4001_unless_refreshed(hub):
    """A socket whose token expires is closed with 4001; one that refreshed in time stays open."""
    with hub.connect(label="expiring") as expiring, hub.connect(label="refreshed") as refreshed:
        started = time.monotonic()
        expiring.hello(hub.token("candidate", "c-exp", ttl=2))
        refreshed.hello(hub.token("candidate", "c-exp2", ttl=2))
        refreshed.ok("refresh", token=hub.token("candidate", "c-exp2", ttl=3600))
        expiring.ping()
        expiring.expect_close(4001, timeout=5)
        assert time.monotonic() - started < 4.5
        refreshed.ping()  # past the first token's exp


def test_bearer_token_expiry_closes_with_4001(hub):
    with hub.connect(bearer=hub.token("proctor", "p-exp", ttl=1)) as c:
        c.expect_close(4001, timeout=4)


def test_no_hello_within_auth_timeout_closes_with_4001(tight_hub):
    """EXAMHUB_AUTH_TIMEOUT=1: a silent socket is closed with 4001; one that said hello in time stays open."""
    with tight_hub.connect(label="silent") as silent, tight_hub.connect(label="hello") as greeted:
        started = time.monotonic()
        greeted.hello(tight_hub.token("candidate", "c-auth"))
        silent.expect_close(4001, timeout=4)
        assert 0.8 <= time.monotonic() - started < 3.5
        greeted.ping()


def test_refused_hello_does_not_extend_the_auth_timeout(tight_hub):
    with tight_hub.connect() as c:
        started = time.monotonic()
        c.error("hello", "unauthorized", token="nope")
        c.expect_close(4001, timeout=4)
        assert time.monotonic() - started < 3.5
