"""Consistency tests of the machine-readable contract in Protocols/ (run: python3 -m pytest Tests/Contract -q)."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from urllib.parse import urldefrag

import pytest
import yaml
from jsonschema import Draft202012Validator, ValidationError

import contract

P = contract.PROTOCOLS
EX = contract.EXAMPLES
INDEX = contract.index()
OPS = sorted(INDEX["ops"])
EVENTS = sorted(INDEX["events"])

PROTOCOL_OPS = {"hello", "ping", "refresh", "subscribe", "unsubscribe", "attempt.join", "answer.save",
                "attempt.submit", "telemetry", "proctor.watch", "proctor.action", "chat.send", "chat.cancel",
                "publish"}
PROTOCOL_EVENTS = {"answer.saved", "attempt.warned", "attempt.paused", "attempt.resumed", "attempt.extended",
                   "attempt.terminated", "attempt.submitted", "candidate.joined", "candidate.left",
                   "candidate.state", "flag.raised", "risk.changed", "chat.reply", "chat.delta", "chat.done",
                   "chat.error", "error",
                   "candidate.help"}  # an addition: the assistant's human_help and report_problem actions
ERROR_CODES = {"bad_request", "unauthorized", "forbidden", "not_found", "conflict", "attempt_closed",
               "attempt_paused", "rate_limited", "too_large", "unavailable", "internal"}


def load(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def example(rel: str):
    return copy.deepcopy(load(EX / rel))


# ------------------------------------------------------------------ index and files

def test_index_covers_protocol():
    assert set(OPS) == PROTOCOL_OPS
    assert set(EVENTS) == PROTOCOL_EVENTS
    assert (P / INDEX["errorReply"]).is_file()


def test_index_paths_exist():
    for op, entry in INDEX["ops"].items():
        assert entry == {"request": f"schemas/ops/{op}.request.json", "reply": f"schemas/ops/{op}.reply.json"}
        assert (P / entry["request"]).is_file() and (P / entry["reply"]).is_file()
    for t, rel in INDEX["events"].items():
        assert rel == f"schemas/events/{t}.json" and (P / rel).is_file()


def test_every_index_entry_has_an_example_and_vice_versa():
    want = {f"ops/{op}.{k}.json" for op in OPS for k in ("request", "reply")}
    want |= {f"events/{t}.json" for t in EVENTS}
    have = {p.relative_to(EX).as_posix() for p in EX.glob("ops/*.json")}
    have |= {p.relative_to(EX).as_posix() for p in EX.glob("events/*.json")}
    assert have == want
    assert (EX / "reply.error.json").is_file()
    schema_ops = {p.name for p in (P / "schemas/ops").glob("*.json")}
    assert schema_ops == {f"{op}.{k}.json" for op in OPS for k in ("request", "reply")}
    assert {p.stem for p in (P / "schemas/events").glob("*.json")} == set(EVENTS)


# ------------------------------------------------------------------ schemas themselves

SCHEMA_FILES = [p.relative_to(P).as_posix() for p in contract.schema_files()]


@pytest.mark.parametrize("rel", SCHEMA_FILES)
def test_schema_is_valid_2020_12(rel):
    s = contract.schema(rel)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["$id"] == "https://examhub.dev/" + rel
    Draft202012Validator.check_schema(s)


def _refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


@pytest.mark.parametrize("rel", SCHEMA_FILES)
def test_schema_refs_resolve(rel):
    s = contract.schema(rel)
    resolver = contract.registry().resolver(base_uri=s["$id"])
    for ref in _refs(s):
        assert not ref.startswith("http"), f"use relative $refs: {ref}"
        resolver.lookup(ref)  # raises when unresolvable


def test_common_error_codes_match_protocol():
    common = contract.schema("schemas/common.json")
    assert set(common["$defs"]["errorCode"]["enum"]) == ERROR_CODES
    assert set(common["$defs"]["role"]["enum"]) == {"candidate", "proctor", "admin", "service"}
    assert set(common["$defs"]["attemptState"]["enum"]) == {"in_progress", "paused", "submitted", "terminated"}


# ------------------------------------------------------------------ examples validate

@pytest.mark.parametrize("op", OPS)
def test_request_example(op):
    frame = example(f"ops/{op}.request.json")
    assert frame["op"] == op
    contract.validate_request(frame)
    contract.validate("schemas/envelope.client.json", frame)


@pytest.mark.parametrize("op", OPS)
def test_reply_example(op):
    frame = example(f"ops/{op}.reply.json")
    request = example(f"ops/{op}.request.json")
    assert frame["id"] == request["id"]
    contract.validate_reply(op, frame)
    contract.validate("schemas/envelope.server.json", frame)
    contract.validate_server_frame(frame, op)


@pytest.mark.parametrize("t", EVENTS)
def test_event_example(t):
    frame = example(f"events/{t}.json")
    assert frame["type"] == t
    contract.validate_event(frame)
    contract.validate("schemas/envelope.server.json", frame)
    contract.validate_server_frame(frame)


def test_error_reply_example():
    frame = example("reply.error.json")
    for op in OPS:
        contract.validate_reply(op, frame)
    contract.validate("schemas/envelope.server.json", frame)


@pytest.mark.parametrize("name", ["exam", "attempt", "error", "report", "ready", "audit"])
def test_http_examples(name):
    contract.validate(f"schemas/http/{name}.json", example(f"http/{name}.json"))


# ------------------------------------------------------------------ negative checks

def rejects(fn, *args):
    with pytest.raises(ValidationError):
        fn(*args)


def test_rejects_missing_required_field():
    frame = example("ops/answer.save.request.json")
    del frame["opId"]
    rejects(contract.validate_request, frame)
    frame = example("ops/hello.reply.json")
    del frame["data"]["connId"]
    rejects(contract.validate_reply, "hello", frame)
    frame = example("events/attempt.resumed.json")
    del frame["data"]["deadline"]
    rejects(contract.validate_event, frame)


def test_rejects_wrong_types():
    frame = example("ops/subscribe.request.json")
    frame["since"]["seq"] = "41"
    rejects(contract.validate_request, frame)
    frame = example("ops/ping.request.json")
    frame["id"] = -1
    rejects(contract.validate_request, frame)
    frame = example("ops/ping.request.json")
    frame["id"] = "7"
    rejects(contract.validate_request, frame)
    frame = example("events/risk.changed.json")
    frame["seq"] = 0
    rejects(contract.validate_event, frame)
    frame = example("ops/attempt.submit.reply.json")
    frame["data"]["state"] = "in_progress"
    rejects(contract.validate_reply, "attempt.submit", frame)


def test_rejects_unknown_error_code():
    frame = example("reply.error.json")
    frame["error"]["code"] = "oops"
    rejects(contract.validate_reply, "answer.save", frame)
    frame = example("events/error.json")
    frame["data"]["code"] = "E_BAD"
    rejects(contract.validate_event, frame)


def test_rejects_bad_timestamps_and_channels():
    frame = example("events/answer.saved.json")
    frame["ts"] = "2026-11-23T10:38:31Z"  # server timestamps carry milliseconds
    rejects(contract.validate_event, frame)
    frame = example("events/flag.raised.json")
    frame["ch"] = "attempt:a-7f3k2"  # proctor events travel on exam:<id>:proctor
    rejects(contract.validate_event, frame)
    frame = example("ops/subscribe.request.json")
    for ch in ("conn", "attempt:", "attempt:a b", "exam:e1", "chat:" + "x" * 129, "lobby:1"):
        frame["ch"] = ch
        rejects(contract.validate_request, frame)
    frame = example("events/error.json")
    frame["ch"] = "attempt:a1"
    rejects(contract.validate_event, frame)


def test_rejects_domain_violations():
    frame = example("ops/telemetry.request.json")
    frame["events"].append({"kind": "keyboard.mash", "at": "2026-11-23T10:38:31.123Z"})
    rejects(contract.validate_request, frame)
    frame = example("ops/telemetry.request.json")
    frame["events"] = [{"kind": "focus.lost", "at": "2026-11-23T10:38:31.123Z"}] * 257
    rejects(contract.validate_request, frame)
    frame = example("ops/telemetry.request.json")
    frame["events"] = [{"kind": "face.count", "at": "2026-11-23T10:38:31.123Z", "data": {}}]
    rejects(contract.validate_request, frame)
    frame = example("ops/proctor.action.request.json")
    del frame["minutes"]
    rejects(contract.validate_request, frame)  # extend needs minutes
    frame["action"] = "smite"
    rejects(contract.validate_request, frame)
    frame = example("ops/attempt.join.reply.json")
    frame["data"]["answers"]["q1"]["version"] = 0
    rejects(contract.validate_reply, "attempt.join", frame)
    frame = example("events/attempt.submitted.json")
    frame["data"]["reason"] = "bored"
    rejects(contract.validate_event, frame)


def test_rejects_unknown_op_and_event_type():
    rejects(contract.validate_request, {"op": "attempt.hack", "id": 1})
    rejects(contract.validate_request, {"id": 1})
    rejects(contract.validate_event, {"op": "event", "ch": "conn", "seq": 1, "type": "nope",
                                      "ts": "2026-11-23T10:38:31.123Z", "data": {}})
    rejects(contract.validate_reply, "nope", example("ops/ping.reply.json"))


def test_reply_picks_schema_by_ok():
    ok = example("ops/ping.reply.json")
    ok["ok"] = False  # an ok=false reply must carry an error
    rejects(contract.validate_reply, "ping", ok)
    err = example("reply.error.json")
    err["ok"] = True
    rejects(contract.validate_reply, "ping", err)


def test_forward_compatible_extra_fields_allowed():
    frame = example("ops/answer.save.request.json")
    frame["clientTs"] = "2026-11-23T10:38:31.123Z"
    contract.validate_request(frame)
    ev = example("events/answer.saved.json")
    ev["data"]["by"] = "u1"
    contract.validate_event(ev)


# ------------------------------------------------------------------ OpenAPI

def _file_refs(doc, base: Path):
    for ref in _refs(doc):
        target, frag = urldefrag(ref)
        if not target:
            continue
        yield ref, (base / target).resolve()


def test_openapi_is_valid():
    from openapi_spec_validator import validate
    from openapi_spec_validator.readers import read_from_filename
    spec, base_uri = read_from_filename(str(P / "openapi.yaml"))
    assert spec["openapi"] == "3.1.0"
    validate(spec, base_uri=base_uri)
    for ref, path in _file_refs(spec, P):
        assert path.is_file(), ref
    paths = spec["paths"]
    for route in ("/healthz", "/readyz", "/metrics", "/v1/socket", "/v1/echo", "/v1/exams", "/v1/exams/{id}",
                  "/v1/attempts/{id}", "/v1/exams/{id}/report"):
        assert route in paths, route
    assert set(paths["/v1/exams"]["post"]["responses"]) >= {"201", "400", "401", "403", "409"}
    assert set(paths["/v1/socket"]["get"]["responses"]) >= {"101", "400", "403"}
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}
    assert spec["components"]["securitySchemes"]["bearerAuth"]["bearerFormat"] == "JWT"


# ------------------------------------------------------------------ AsyncAPI

@pytest.fixture(scope="module")
def asyncapi():
    with open(P / "asyncapi.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def _pointer(doc, frag):
    node = doc
    for part in frag.lstrip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part]
    return node


def test_asyncapi_header(asyncapi):
    assert asyncapi["asyncapi"] == "3.0.0"
    assert asyncapi["servers"]["local"]["host"] == "localhost:8080"
    assert asyncapi["servers"]["local"]["protocol"] == "ws"
    assert asyncapi["channels"]["socket"]["address"] == "/v1/socket"
    text = (P / "asyncapi.yaml").read_text(encoding="utf-8")
    assert "examhub.v1.json" in text
    for code in ERROR_CODES:
        assert code in text
    for close in ("1000", "1001", "1003", "1008", "1009", "4001", "4003", "4008", "4009"):
        assert close in text


def test_asyncapi_refs_resolve(asyncapi):
    refs = list(_refs(asyncapi))
    assert refs
    for ref in refs:
        target, frag = urldefrag(ref)
        if target:
            path = (P / target).resolve()
            assert path.is_file(), ref
            if frag:
                _pointer(load(path), frag)
        else:
            _pointer(asyncapi, frag)  # KeyError when dangling


def test_asyncapi_covers_every_message(asyncapi):
    payloads = {m["payload"]["$ref"].lstrip("./") for m in asyncapi["components"]["messages"].values()}
    want = {e[k] for e in INDEX["ops"].values() for k in ("request", "reply")}
    want |= set(INDEX["events"].values()) | {INDEX["errorReply"]}
    assert payloads == want
    actions = {name: o["action"] for name, o in asyncapi["operations"].items()}
    for op in OPS:
        assert actions[f"op.{op}"] == "receive"
    for t in EVENTS:
        assert actions[f"event.{t}"] == "send"
    for o in asyncapi["operations"].values():
        assert o["channel"] == {"$ref": "#/channels/socket"}


# ------------------------------------------------------------------ outbox events (webhook bodies)

OUTBOX_TYPES = sorted(p.stem for p in (P / "schemas/outbox").glob("*.json") if p.stem != "webhook")


def test_outbox_schemas_cover_the_webhook_types():
    assert OUTBOX_TYPES == sorted(contract.schema("schemas/outbox/webhook.json")["properties"]["type"]["enum"])
    assert {p.stem for p in (EX / "outbox").glob("*.json")} == set(OUTBOX_TYPES)


@pytest.mark.parametrize("t", OUTBOX_TYPES)
def test_outbox_example(t):
    body = example(f"outbox/{t}.json")
    assert body["type"] == t
    contract.validate("schemas/outbox/webhook.json", body)
    contract.validate(f"schemas/outbox/{t}.json", body["data"])
