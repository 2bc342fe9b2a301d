"""Exam and attempt HTTP routes (PROTOCOL.md section 6, issue 3): `POST /v1/exams`, `GET /v1/exams/{id}`,
`GET /v1/attempts/{id}`: validation with messages naming the field, roles, the `exams` claim, tenants."""
from __future__ import annotations

import json

import pytest

import contract
from examkit import (admin_token, attempt_doc, create_exam, exam_def, get_attempt, http_json, join, post_exam,
                     questions, save_ok, ts, uid)

# --------------------------------------------------------------------------------------- POST /v1/exams


def test_create_exam_answers_201_with_the_stored_definition_and_get_returns_it(hub):
    definition = exam_def(duration=900, grace=30)
    status, doc = post_exam(hub, definition)
    assert status == 201, doc
    contract.validate("schemas/http/exam.json", doc)
    assert doc == definition
    status, got = http_json(hub, "GET", f"/v1/exams/{definition['id']}", admin_token(hub))
    assert status == 200
    contract.validate("schemas/http/exam.json", got)
    assert got == definition


def test_create_exam_fills_defaults(hub):
    """graceSec and proctoring are optional: the stored definition carries 0 and the default profile."""
    definition = exam_def(grace=None)
    del definition["proctoring"]
    status, doc = post_exam(hub, definition)
    assert status == 201, doc
    contract.validate("schemas/http/exam.json", doc)
    assert doc["graceSec"] == 0 and doc["proctoring"] == {"profile": "default"}
    assert doc["questions"] == definition["questions"]


def test_repeated_post_of_the_same_id_is_409_and_keeps_the_first(hub):
    first = create_exam(hub, duration=600)
    again = exam_def(first["id"], duration=1200)
    status, doc = post_exam(hub, again)
    assert status == 409 and doc["error"]["code"] == "conflict", doc
    status, got = http_json(hub, "GET", f"/v1/exams/{first['id']}", admin_token(hub))
    assert status == 200 and got["durationSec"] == 600


def test_the_same_exam_id_in_two_tenants_is_two_exams(hub):
    eid = uid("e")
    create_exam(hub, exam_id=eid, tenant="t1", duration=100)
    create_exam(hub, exam_id=eid, tenant="t2", duration=200)
    for tenant, duration in [("t1", 100), ("t2", 200)]:
        status, got = http_json(hub, "GET", f"/v1/exams/{eid}", admin_token(hub, tenant))
        assert status == 200 and got["durationSec"] == duration


def _without(key):
    d = exam_def()
    del d[key]
    return d


def _q(**changes):
    qs = questions()
    qs[0] = {**qs[0], **changes}
    return exam_def(qs=[q for q in qs])


def _q_without(index, key):
    qs = questions()
    del qs[index][key]
    return exam_def(qs=qs)


# (case, body, a word the message must contain)
INVALID = [
    ("missing id", _without("id"), "id"),
    ("id not a string", exam_def(exam_id=7), "id"),
    ("id empty", exam_def(exam_id=""), "id"),
    ("id with a slash", exam_def(exam_id="a/b"), "id"),
    ("missing title", _without("title"), "title"),
    ("missing durationSec", _without("durationSec"), "durationSec"),
    ("durationSec zero", exam_def(duration=0), "durationSec"),
    ("durationSec negative", exam_def(duration=-60), "durationSec"),
    ("durationSec a string", exam_def(duration="60"), "durationSec"),
    ("durationSec a fraction", exam_def(duration=1.5), "durationSec"),
    ("durationSec null", exam_def(duration=None), "durationSec"),
    ("graceSec negative", exam_def(grace=-1), "graceSec"),
    ("graceSec a string", exam_def(grace="5"), "graceSec"),
    ("missing questions", _without("questions"), "questions"),
    ("questions empty", exam_def(qs=[]), "questions"),
    ("questions an object", exam_def(qs={"q1": {}}), "questions"),
    ("question not an object", exam_def(qs=["q1"]), "questions[0]"),
    ("question without id", _q_without(2, "id"), "questions[2].id"),
    ("question without type", _q_without(2, "type"), "questions[2].type"),
    ("unknown type", _q(type="essay"), "questions[0].type"),
    ("question without prompt", _q_without(2, "prompt"), "questions[2].prompt"),
    ("single without options", _q_without(0, "options"), "questions[0].options"),
    ("single with empty options", _q(options=[]), "questions[0].options"),
    ("multi without options", _q_without(1, "options"), "questions[1].options"),
    ("options not strings", _q(options=["A", 2]), "questions[0].options"),
    ("duplicate options", _q(options=["A", "A"]), "questions[0].options"),
    ("duplicate question ids", exam_def(qs=questions() + [{"id": "q-text", "type": "text", "prompt": "again"}]),
     "questions[4].id"),
    ("proctoring not an object", exam_def(proctoring="strict"), "proctoring"),
    ("title empty", exam_def(title=""), "title"),
    ("durationSec over a week", exam_def(duration=7 * 24 * 3600 + 1), "durationSec"),
    ("graceSec over an hour", exam_def(grace=3601), "graceSec"),
    ("options on a text question", exam_def(qs=[{"id": "q1", "type": "text", "prompt": "p", "options": ["a"]}]),
     "questions[0].options"),
    ("501 questions", exam_def(qs=[{"id": f"q{i}", "type": "text", "prompt": "p"} for i in range(501)]),
     "questions"),
]


@pytest.mark.parametrize("case,body,field", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_definition_is_400_naming_the_field(hub, case, body, field):
    status, doc = post_exam(hub, body)
    assert status == 400, (case, status, doc)
    assert doc["error"]["code"] == "bad_request"
    assert field in doc["error"]["message"], f"{case}: the message does not name {field!r}: {doc}"
    if isinstance(body, dict) and isinstance(body.get("id"), str) and body["id"]:
        # Nothing was stored: the id is still free.
        status, doc = http_json(hub, "GET", f"/v1/exams/{body['id']}", admin_token(hub))
        assert status in (404,), (case, status, doc)


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b'{"id":"e1",}', b"[]", b'"exam"', b"null",
                                 b'{"id":"e1"} {"id":"e2"}'])
def test_invalid_json_body_is_400(hub, raw):
    status, doc = http_json(hub, "POST", "/v1/exams", admin_token(hub), raw=raw)
    assert status == 400 and doc["error"]["code"] == "bad_request", (raw, doc)


def test_body_over_one_mebibyte_is_refused_and_the_hub_goes_on(hub):
    """A definition over 1 MiB (a valid JSON document with a huge prompt) is refused with a JSON error:
    413 too_large (see the report: the OpenAPI of POST /v1/exams lists no 413)."""
    big = exam_def(qs=[{"id": "q1", "type": "text", "prompt": "p" * (1 << 20)}])
    status, doc = post_exam(hub, big)
    assert (status, doc["error"]["code"]) in {(413, "too_large"), (400, "bad_request")}, (status, doc)
    status, _ = http_json(hub, "GET", f"/v1/exams/{big['id']}", admin_token(hub))
    assert status == 404
    create_exam(hub)  # the next request is served


def test_post_without_token_is_401(hub):
    status, doc = http_json(hub, "POST", "/v1/exams", None, body=exam_def())
    assert status == 401 and doc["error"]["code"] == "unauthorized"
    status, doc = http_json(hub, "POST", "/v1/exams", "not-a-jwt", body=exam_def())
    assert status == 401 and doc["error"]["code"] == "unauthorized"
    status, doc = http_json(hub, "POST", "/v1/exams", hub.token("admin", "a1", secret="wrong-secret-" * 4),
                            body=exam_def())
    assert status == 401 and doc["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("role", ["candidate", "proctor", "service"])
def test_post_by_a_non_admin_is_403(hub, role):
    definition = exam_def()
    status, doc = post_exam(hub, definition, token=hub.token(role, f"{role}-1"))
    assert status == 403 and doc["error"]["code"] == "forbidden", doc
    status, _ = http_json(hub, "GET", f"/v1/exams/{definition['id']}", admin_token(hub))
    assert status == 404


def test_admin_exams_claim_limits_which_exams_it_may_create(hub):
    allowed, other = uid("e"), uid("e")
    token = admin_token(hub, exams=[allowed])
    status, doc = post_exam(hub, exam_def(other), token=token)
    assert status == 403 and doc["error"]["code"] == "forbidden", doc
    status, doc = post_exam(hub, exam_def(allowed), token=token)
    assert status == 201, doc
    status, doc = http_json(hub, "GET", f"/v1/exams/{other}", admin_token(hub))
    assert status == 404


# --------------------------------------------------------------------------------------- GET /v1/exams/{id}


def test_get_exam_errors(hub):
    exam = create_exam(hub)
    eid = exam["id"]
    assert http_json(hub, "GET", f"/v1/exams/{uid('nope')}", admin_token(hub))[0] == 404
    assert http_json(hub, "GET", f"/v1/exams/{eid}", admin_token(hub, "t2"))[0] == 404  # another tenant's
    assert http_json(hub, "GET", f"/v1/exams/{eid}", None)[0] == 401
    for role in ["candidate", "proctor", "service"]:
        status, doc = http_json(hub, "GET", f"/v1/exams/{eid}", hub.token(role, "x1"))
        assert status == 403 and doc["error"]["code"] == "forbidden", (role, doc)
    status, doc = http_json(hub, "GET", f"/v1/exams/{eid}", admin_token(hub, exams=[uid("e")]))
    assert status == 403, doc
    status, doc = http_json(hub, "GET", f"/v1/exams/{eid}", admin_token(hub, exams=[eid]))
    assert status == 200 and doc == exam


# --------------------------------------------------------------------------------------- GET /v1/attempts/{id}


@pytest.fixture
def attempt(hub):
    """An attempt of candidate `cand-http` with one saved answer: (exam, attemptId, join data, save data)."""
    exam = create_exam(hub, duration=600)
    with hub.client("candidate", "cand-http") as c:
        data = join(c, exam["id"])
        saved = save_ok(c, data["attemptId"], "q-multi", ["x", "z"])
    return exam, data["attemptId"], data, saved


def test_get_attempt_as_admin(hub, attempt):
    exam, aid, joined, saved = attempt
    doc = attempt_doc(hub, aid)
    assert doc["id"] == aid and doc["examId"] == exam["id"] and doc["tenant"] == "t1"
    assert doc["candidate"] == "cand-http" and doc["state"] == "in_progress"
    assert "reason" not in doc and "submittedAt" not in doc
    assert doc["deadline"] == joined["deadline"]
    assert abs(ts(doc["deadline"]) - ts(doc["startedAt"]) - 600) < 0.01
    assert doc["answers"] == {"q-multi": {"value": ["x", "z"], "version": 1, "savedAt": saved["savedAt"]}}
    assert doc["flags"] == [] and doc["risk"] == 0


def test_get_attempt_as_a_proctor_of_the_exam(hub, attempt):
    exam, aid, _, _ = attempt
    for exams in [None, [exam["id"]], [uid("e"), exam["id"]]]:
        status, doc = get_attempt(hub, aid, token=hub.token("proctor", "p-http", exams=exams))
        assert status == 200 and doc["id"] == aid, (exams, doc)


def test_get_attempt_refusals(hub, attempt):
    exam, aid, _, _ = attempt
    cases = [
        (hub.token("proctor", "p-http", exams=[uid("e")]), 403, "forbidden"),
        (hub.token("admin", "a-http", exams=[uid("e")]), 403, "forbidden"),
        (hub.token("candidate", "cand-http"), 403, "forbidden"),  # even its own candidate
        (hub.token("candidate", "someone-else"), 403, "forbidden"),
        (hub.token("service", "s1"), 403, "forbidden"),
        (hub.token("admin", "a-t2", "t2"), 404, "not_found"),  # another tenant's attempt
        (hub.token("proctor", "p-t2", "t2"), 404, "not_found"),
        (None, 401, "unauthorized"),
    ]
    for token, status, code in cases:
        got, doc = get_attempt(hub, aid, token=token) if token else http_json(hub, "GET", f"/v1/attempts/{aid}")
        assert (got, doc["error"]["code"]) == (status, code), (token, got, doc)
    for unknown in [uid("a"), "a-00000000000000000000", "x" * 128]:
        status, doc = get_attempt(hub, unknown)
        assert status == 404 and doc["error"]["code"] == "not_found", doc


def test_attempt_answers_round_trip_json_values(hub):
    """Values come back exactly as saved: unicode, numbers, null, and a 2-element multi."""
    exam = create_exam(hub)
    values = {"q-text": "naïve ☃ \"quoted\" \\ \n tab\t 😀", "q-number": -12.5, "q-single": None,
              "q-multi": ["z", "x"]}
    with hub.client("candidate", "cand-values") as c:
        aid = join(c, exam["id"])["attemptId"]
        for qid, value in values.items():
            save_ok(c, aid, qid, value)
    doc = attempt_doc(hub, aid)
    assert {qid: a["value"] for qid, a in doc["answers"].items()} == values
    assert all(a["version"] == 1 for a in doc["answers"].values())
    raw = json.dumps(doc["answers"]["q-text"]["value"], ensure_ascii=False)
    assert "😀" in raw
