"""Proctoring end to end (issue 4, PROTOCOL.md sections 3, 4 and 4a): `telemetry` in, `flag.raised` and
`risk.changed` out on `exam:<id>:proctor`, the `proctor.watch` roster and presence, every `proctor.action` applied
to the attempt and delivered to the candidate, the audit log over HTTP, and every access-control refusal.

Every frame is checked against Protocols/ by `Client`; the rules themselves are tested trace by trace in
Tests/ExamHubProctoringTests."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

import contract
from examkit import (KillableHubs, admin_token, attempt_doc, create_exam, db_rows, drain_events, events_of,
                     http_json, join, post_exam, exam_def, save, save_error, save_ok, ts, uid, wait_until)


def now_iso(offset: float = 0) -> str:
    t = datetime.fromtimestamp(time.time() + offset, tz=timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ev(kind: str, offset: float = 0, **data) -> dict:
    e = {"kind": kind, "at": now_iso(offset)}
    if data:
        e["data"] = data
    return e


def telemetry(c, attempt_id: str, *events: dict) -> dict:
    return c.request("telemetry", attemptId=attempt_id, events=list(events))


def telemetry_ok(c, attempt_id: str, *events: dict) -> int:
    r = telemetry(c, attempt_id, *events)
    assert r["ok"] is True, f"{c.label}: telemetry failed: {r}"
    assert r["data"]["accepted"] == len(events), r
    return r["data"]["accepted"]


def proctor_events(p, exam_id: str, type_: str, n: int = 1, timeout: float = 5) -> list[dict]:
    return events_of(p, f"exam:{exam_id}:proctor", type_, n=n, timeout=timeout)


@pytest.fixture
def exam(hub):
    return create_exam(hub)


@pytest.fixture
def room(hub, exam):
    """A proctor watching the exam and one candidate joined: (proctor, candidate, attemptId, roster)."""
    sub = uid("cand")
    with hub.client("proctor", uid("proc"), label="proctor") as p, hub.client("candidate", sub, label=sub) as c:
        roster = p.ok("proctor.watch", examId=exam["id"])["roster"]
        aid = join(c, exam["id"])["attemptId"]
        joined = proctor_events(p, exam["id"], "candidate.joined")[0]
        assert joined["data"]["attemptId"] == aid and joined["data"]["candidate"] == sub
        yield p, c, aid, roster


# ------------------------------------------------------------------------------------------------ telemetry


def test_telemetry_is_accepted_and_stored_one_row_per_frame(hub, room):
    p, c, aid, _ = room
    telemetry_ok(c, aid, ev("focus.lost", -2), ev("focus.gained", -1), ev("face.count", n=1))
    telemetry_ok(c, aid, ev("visibility.hidden"))

    def stored():
        return db_rows(hub.db_path, "SELECT event_count FROM telemetry_batches WHERE attempt_id = ? ORDER BY received_ms",
                       (aid,))
    wait_until(lambda: len(stored()) == 2, 5, what="two evidence rows")
    assert [n for (n,) in stored()] == [3, 1]


@pytest.mark.parametrize("events, code, fragment", [
    ([{"kind": "mouse.move", "at": "2026-01-01T00:00:00Z"}], "bad_request", "not a telemetry kind"),
    ([{"kind": "focus.lost"}], "bad_request", "events[0].at"),
    ([{"kind": "face.count", "at": "2026-01-01T00:00:00Z", "data": {"n": "two"}}], "bad_request", "events[0].data.n"),
    ([{"kind": "voice.detected", "at": "2026-01-01T00:00:00Z", "data": {"seconds": -5}}], "bad_request", "seconds"),
    ([], "bad_request", "must not be empty"),
    ("focus.lost", "bad_request", "must be an array"),
    ([{"kind": "focus.lost", "at": "2026-01-01T00:00:00Z"}] * 257, "too_large", "256"),
])
def test_bad_telemetry_is_refused_and_nothing_is_stored(hub, room, events, code, fragment):
    p, c, aid, _ = room
    r = c.request("telemetry", attemptId=aid, events=events)
    assert r["ok"] is False and r["error"]["code"] == code, r
    assert fragment in r["error"]["message"], r
    telemetry_ok(c, aid, ev("focus.lost"))  # the socket goes on; only the good frame is stored
    wait_until(lambda: db_rows(hub.db_path, "SELECT count(*) FROM telemetry_batches WHERE attempt_id = ?", (aid,))[0][0] == 1,
               5, what="the good frame stored")
    time.sleep(0.3)
    assert db_rows(hub.db_path, "SELECT count(*) FROM telemetry_batches WHERE attempt_id = ?", (aid,))[0][0] == 1


def test_flags_reach_watching_proctors_with_evidence_and_risk_but_never_the_candidate(hub, exam, room):
    p, c, aid, _ = room
    with hub.client("proctor", uid("proc2"), label="proctor2") as p2:
        p2.ok("proctor.watch", examId=exam["id"])
        sent = time.monotonic()
        telemetry_ok(c, aid, ev("face.count", n=2))
        for watcher in (p, p2):
            flag = proctor_events(watcher, exam["id"], "flag.raised")[0]["data"]
            assert flag["attemptId"] == aid and flag["code"] == "multiple_faces" and flag["severity"] == "critical"
            assert [e["kind"] for e in flag["evidence"]["events"]] == ["face.count"]
            assert flag["evidence"]["events"][0]["data"] == {"n": 2}
            risk = proctor_events(watcher, exam["id"], "risk.changed")[0]["data"]
            assert risk == {"attemptId": aid, "risk": 40}
        assert time.monotonic() - sent < 2
    # The candidate sees nothing of it, and may not listen in.
    assert not [e for e in drain_events(c) if e["type"] in ("flag.raised", "risk.changed")]
    c.error("subscribe", "forbidden", ch=f"exam:{exam['id']}:proctor")
    doc = attempt_doc(hub, aid)
    assert [(f["code"], f["severity"]) for f in doc["flags"]] == [("multiple_faces", "critical")]
    assert doc["risk"] == 40


def test_a_repeated_flag_is_merged_not_raised_again(hub, exam, room):
    p, c, aid, _ = room
    for _ in range(5):
        telemetry_ok(c, aid, ev("clipboard.paste"))
    assert len(proctor_events(p, exam["id"], "flag.raised")) == 1
    time.sleep(0.3)
    assert not [e for e in drain_events(p) if e["type"] == "flag.raised"]
    wait_until(lambda: db_rows(hub.db_path, "SELECT occurrences FROM flags WHERE attempt_id = ?", (aid,)) == [(5,)], 5,
               what="one stored flag with 5 occurrences")
    doc = attempt_doc(hub, aid)
    assert [f["code"] for f in doc["flags"]] == ["paste"]


def test_count_rule_end_to_end_tab_switching_after_three_hidden_tabs(hub, exam, room):
    p, c, aid, _ = room
    telemetry_ok(c, aid, ev("visibility.hidden", -30), ev("visibility.visible", -29))
    telemetry_ok(c, aid, ev("visibility.hidden", -20), ev("visibility.visible", -19))
    time.sleep(0.2)
    assert not [e for e in drain_events(p) if e["type"] == "flag.raised"]
    telemetry_ok(c, aid, ev("visibility.hidden"))
    flag = proctor_events(p, exam["id"], "flag.raised")[0]["data"]
    assert flag["code"] == "tab_switching" and len(flag["evidence"]["events"]) == 3


def test_an_honest_session_raises_nothing(hub, exam, room):
    p, c, aid, _ = room
    telemetry_ok(c, aid, ev("fullscreen.enter", -50), ev("screen.count", -50, n=1),
                 *[ev("face.count", -45 + 5 * i, n=1) for i in range(9)],
                 ev("visibility.hidden", -30), ev("visibility.visible", -28), ev("clipboard.copy", -20),
                 ev("voice.detected", -10, seconds=4), ev("gaze.away", -5, seconds=1.5), ev("network.offline", seconds=3))
    time.sleep(0.3)
    assert not [e for e in drain_events(p) if e["type"] in ("flag.raised", "risk.changed")]
    assert attempt_doc(hub, aid)["risk"] == 0


def test_telemetry_rate_is_limited_per_attempt_across_tabs(start_hub):
    hub = start_hub({"EXAMHUB_TELEMETRY_RATE": "0.5", "EXAMHUB_TELEMETRY_BURST": "3"})
    exam = create_exam(hub)
    sub = uid("cand")
    with hub.client("candidate", sub) as tab1, hub.client("candidate", sub) as tab2:
        aid = join(tab1, exam["id"])["attemptId"]
        join(tab2, exam["id"])
        telemetry_ok(tab1, aid, ev("focus.lost"))
        telemetry_ok(tab2, aid, ev("focus.lost"))
        telemetry_ok(tab1, aid, ev("focus.lost"))
        r = telemetry(tab2, aid, ev("focus.lost"))
        assert r["ok"] is False and r["error"]["code"] == "rate_limited", r
        tab2.ping()  # a refusal, not a close


# ------------------------------------------------------------------------------------------------ watch and presence


def test_roster_lists_every_attempt_with_state_risk_flags_and_presence(hub, exam):
    a_sub, b_sub = uid("a"), uid("b")
    with hub.client("candidate", a_sub) as a:
        aid = join(a, exam["id"])["attemptId"]
        telemetry_ok(a, aid, ev("devtools.open"))
        with hub.client("candidate", b_sub) as b:
            bid = join(b, exam["id"])["attemptId"]
            b.ok("attempt.submit", attemptId=bid, opId=uid("op"))
        with hub.client("proctor", uid("proc")) as p:
            roster = {r["attemptId"]: r for r in p.ok("proctor.watch", examId=exam["id"])["roster"]}
            assert set(roster) == {aid, bid}
            assert roster[aid]["candidate"] == a_sub and roster[aid]["state"] == "in_progress"
            assert roster[aid]["connected"] is True and ts(roster[aid]["lastSeen"]) > time.time() - 10
            assert [f["code"] for f in roster[aid]["flags"]] == ["devtools"] and roster[aid]["risk"] == 40
            assert roster[bid]["state"] == "submitted" and roster[bid]["connected"] is False
            assert roster[bid]["flags"] == [] and roster[bid]["risk"] == 0
            p.ok("proctor.watch", examId=exam["id"])  # watching again is harmless


def test_two_tabs_are_one_candidate_and_leaving_is_announced_once(hub, exam):
    sub = uid("cand")
    with hub.client("proctor", uid("proc")) as p:
        p.ok("proctor.watch", examId=exam["id"])
        tab1 = hub.client("candidate", sub, label="tab1")
        aid = join(tab1, exam["id"])["attemptId"]
        assert proctor_events(p, exam["id"], "candidate.joined")[0]["data"]["attemptId"] == aid
        tab2 = hub.client("candidate", sub, label="tab2")
        join(tab2, exam["id"])
        join(tab2, exam["id"])  # joining twice on one socket counts once
        tab1.close()
        time.sleep(0.3)
        assert not [e for e in drain_events(p) if e["type"] in ("candidate.joined", "candidate.left")]
        roster = p.ok("proctor.watch", examId=exam["id"])["roster"]
        assert roster[0]["connected"] is True
        tab2.close()
        left = proctor_events(p, exam["id"], "candidate.left")[0]["data"]
        assert left["attemptId"] == aid and left["candidate"] == sub
        assert p.ok("proctor.watch", examId=exam["id"])["roster"][0]["connected"] is False
        # Reconnecting announces the candidate again.
        with hub.client("candidate", sub) as tab3:
            join(tab3, exam["id"])
            assert proctor_events(p, exam["id"], "candidate.joined")[0]["data"]["attemptId"] == aid


def test_submit_and_time_up_are_announced_to_proctors(hub):
    exam = create_exam(hub, duration=2)
    with hub.client("proctor", uid("proc")) as p, hub.client("candidate", uid("a")) as a, \
            hub.client("candidate", uid("b")) as b:
        p.ok("proctor.watch", examId=exam["id"])
        aid = join(a, exam["id"])["attemptId"]
        bid = join(b, exam["id"])["attemptId"]
        a.ok("attempt.submit", attemptId=aid, opId=uid("op"))
        states = proctor_events(p, exam["id"], "candidate.state", n=2, timeout=8)
        by_id = {e["data"]["attemptId"]: e["data"] for e in states}
        assert by_id[aid]["state"] == "submitted" and by_id[aid]["reason"] == "candidate"
        assert by_id[bid]["state"] == "submitted" and by_id[bid]["reason"] == "time_up"
        r = telemetry(a, aid, ev("focus.lost"))
        assert r["ok"] is False and r["error"]["code"] == "attempt_closed", r


def test_flags_and_risk_survive_a_restart(tmp_path):
    hubs = KillableHubs(tmp_path)
    try:
        first = hubs.start()
        exam = create_exam(first)
        sub = uid("cand")
        with first.client("candidate", sub) as c:
            aid = join(c, exam["id"])["attemptId"]
            telemetry_ok(c, aid, ev("screen.count", n=3))
        assert hubs.terminate(first) == 0  # the drain writes the last evidence
        second = hubs.start()
        with second.client("proctor", uid("proc")) as p:
            roster = p.ok("proctor.watch", examId=exam["id"])["roster"]
            assert [f["code"] for f in roster[0]["flags"]] == ["multiple_screens"] and roster[0]["risk"] == 40
            assert roster[0]["connected"] is False
        with second.client("candidate", sub) as c:
            join(c, exam["id"])
            with second.client("proctor", uid("proc")) as p:
                p.ok("proctor.watch", examId=exam["id"])
                telemetry_ok(c, aid, ev("devtools.open"))
                assert proctor_events(p, exam["id"], "risk.changed")[0]["data"]["risk"] == 80, "the old flag still counts"
    finally:
        hubs.close()


# ------------------------------------------------------------------------------------------------ actions


def act(p, aid: str, action: str, **fields) -> dict:
    return p.ok("proctor.action", attemptId=aid, action=action, **fields)


def test_every_action_changes_the_attempt_and_reaches_the_candidate(hub, exam, room):
    p, c, aid, _ = room
    ch = f"attempt:{aid}"
    deadline0 = ts(attempt_doc(hub, aid)["deadline"])

    data = act(p, aid, "warn", message="Please keep your eyes on the screen", reason="looked away often")
    assert data["state"] == "in_progress"
    assert events_of(c, ch, "attempt.warned")[0]["data"]["message"] == "Please keep your eyes on the screen"
    assert proctor_events(p, exam["id"], "candidate.state")[0]["data"]["action"] == "warn"

    data = act(p, aid, "pause", reason="checking the room")
    assert data["state"] == "paused"
    events_of(c, ch, "attempt.paused")
    save_error(c, aid, "q-text", "typed while paused", "attempt_paused")
    assert c.error("attempt.submit", "attempt_paused", attemptId=aid, opId=uid("op"))
    assert p.error("proctor.action", "conflict", attemptId=aid, action="pause")["message"]
    time.sleep(1.0)
    data = act(p, aid, "resume")
    assert data["state"] == "in_progress"
    resumed = events_of(c, ch, "attempt.resumed")[0]["data"]
    assert ts(resumed["deadline"]) - deadline0 >= 0.9, "the deadline moves by the paused time"
    assert ts(data["deadline"]) == ts(resumed["deadline"])
    save_ok(c, aid, "q-text", "after resume")

    data = act(p, aid, "extend", minutes=10, reason="technical problem")
    extended = events_of(c, ch, "attempt.extended")[0]["data"]
    assert abs(ts(extended["deadline"]) - ts(resumed["deadline"]) - 600) < 0.01
    assert extended["minutes"] == 10

    data = act(p, aid, "terminate", message="Your exam was ended", reason="second person in the room")
    assert data["state"] == "terminated"
    assert events_of(c, ch, "attempt.terminated")[0]["data"]["reason"] == "Your exam was ended"
    assert proctor_events(p, exam["id"], "candidate.state", n=4)[-1]["data"]["state"] == "terminated"
    save_error(c, aid, "q-text", "too late", "attempt_closed")
    r = telemetry(c, aid, ev("focus.lost"))
    assert r["ok"] is False and r["error"]["code"] == "attempt_closed"
    assert p.error("proctor.action", "attempt_closed", attemptId=aid, action="warn", message="hello?")
    doc = attempt_doc(hub, aid)
    assert doc["state"] == "terminated" and doc["answers"]["q-text"]["value"] == "after resume"

    # The audit log: who, when, what, why, newest first.
    status, body = http_json(hub, "GET", f"/v1/exams/{exam['id']}/audit", admin_token(hub))
    assert status == 200, body
    contract.validate("schemas/http/audit.json", body)
    entries = body["entries"]
    assert [e["action"] for e in entries] == ["terminate", "extend", "resume", "pause", "warn"]
    assert len({e["actor"] for e in entries}) == 1 and entries[0]["actor"].startswith("proc-")
    assert entries[0]["reason"] == "second person in the room" and entries[0]["stateAfter"] == "terminated"
    assert entries[1]["minutes"] == 10 and entries[4]["message"] == "Please keep your eyes on the screen"
    assert all(e["attemptId"] == aid and e["actorRole"] == "proctor" and ts(e["at"]) > time.time() - 60 for e in entries)
    status, body = http_json(hub, "GET", f"/v1/exams/{exam['id']}/audit?attemptId={aid}&limit=2", admin_token(hub))
    assert status == 200 and [e["action"] for e in body["entries"]] == ["terminate", "extend"]
    status, body = http_json(hub, "GET", f"/v1/exams/{exam['id']}/audit?attemptId=a-unknown", admin_token(hub))
    assert status == 200 and body["entries"] == []


@pytest.mark.parametrize("fields, code, fragment", [
    ({"action": "expel"}, "bad_request", "must be one of"),
    ({"action": "extend"}, "bad_request", "minutes"),
    ({"action": "extend", "minutes": 0}, "bad_request", "1...1440"),
    ({"action": "extend", "minutes": 1441}, "bad_request", "1...1440"),
    ({"action": "extend", "minutes": "5"}, "bad_request", "minutes"),
    ({"action": "pause", "minutes": 5}, "bad_request", "only for extend"),
    ({"action": "warn"}, "bad_request", "message"),
    ({"action": "warn", "message": "   "}, "bad_request", "message"),
    ({"action": "warn", "message": 7}, "bad_request", "must be a string"),
    ({"action": "warn", "message": "x" * 2001}, "too_large", "2000"),
    ({"action": "warn", "message": "bell\u0007"}, "bad_request", "control characters"),
    ({"action": "resume"}, "conflict", "not paused"),
])
def test_bad_actions_are_refused_and_change_nothing(hub, exam, room, fields, code, fragment):
    p, c, aid, _ = room
    before = attempt_doc(hub, aid)
    r = p.request("proctor.action", attemptId=aid, **fields)
    assert r["ok"] is False and r["error"]["code"] == code, r
    assert fragment in r["error"]["message"], r
    after = attempt_doc(hub, aid)
    assert (after["state"], after["deadline"]) == (before["state"], before["deadline"])
    assert not [e for e in drain_events(c) if e["type"].startswith("attempt.")]


# ------------------------------------------------------------------------------------------------ access control


def test_candidates_may_not_watch_or_act(hub, exam, room):
    p, c, aid, _ = room
    assert "proctors" in c.error("proctor.watch", "forbidden", examId=exam["id"])["message"]
    c.error("proctor.action", "forbidden", attemptId=aid, action="extend", minutes=60)
    assert attempt_doc(hub, aid)["state"] == "in_progress"


def test_service_tokens_may_not_watch_or_act(hub, exam, room):
    _, _, aid, _ = room
    with hub.client("service", uid("svc")) as s:
        s.error("proctor.watch", "forbidden", examId=exam["id"])
        s.error("proctor.action", "forbidden", attemptId=aid, action="pause")


def test_a_proctor_never_sees_or_touches_another_tenants_exam(hub, exam, room):
    _, c, aid, _ = room
    with hub.client("proctor", uid("proc"), tenant="t2") as other:
        other.error("proctor.watch", "not_found", examId=exam["id"])
        other.error("proctor.action", "not_found", attemptId=aid, action="pause")
        other.error("subscribe", "forbidden", ch=f"attempt:{aid}")
    with hub.client("admin", uid("adm"), tenant="t2") as other_admin:
        other_admin.error("proctor.action", "not_found", attemptId=aid, action="terminate")
    status, _ = http_json(hub, "GET", f"/v1/exams/{exam['id']}/audit", admin_token(hub, tenant="t2"))
    assert status == 404
    assert attempt_doc(hub, aid)["state"] == "in_progress"


def test_a_proctor_acts_only_on_the_exams_of_its_token(hub, exam, room):
    _, _, aid, _ = room
    other_exam = create_exam(hub)
    with hub.client("proctor", uid("proc"), exams=[other_exam["id"]]) as p:
        p.ok("proctor.watch", examId=other_exam["id"])
        p.error("proctor.watch", "forbidden", examId=exam["id"])
        p.error("proctor.action", "forbidden", attemptId=aid, action="pause")
    status, _ = http_json(hub, "GET", f"/v1/exams/{exam['id']}/audit", admin_token(hub, exams=[other_exam["id"]]))
    assert status == 403


def test_telemetry_only_for_the_candidates_own_attempt(hub, exam, room):
    p, _, aid, _ = room
    with hub.client("candidate", uid("other")) as other:
        other.error("telemetry", "forbidden", attemptId=aid, events=[ev("devtools.open")])
    with hub.client("candidate", uid("x"), tenant="t2") as stranger:
        stranger.error("telemetry", "not_found", attemptId=aid, events=[ev("devtools.open")])
    p.error("telemetry", "forbidden", attemptId=aid, events=[ev("devtools.open")])
    with hub.client("candidate", uid("y")) as c:
        c.error("telemetry", "not_found", attemptId="a-does-not-exist", events=[ev("focus.lost")])
    time.sleep(0.3)
    assert not [e for e in drain_events(p) if e["type"] == "flag.raised"], "refused telemetry raised a flag"


def test_the_audit_log_is_for_admins(hub, exam):
    status, body = http_json(hub, "GET", f"/v1/exams/{exam['id']}/audit", hub.token("proctor", "p1", "t1"))
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, _ = http_json(hub, "GET", f"/v1/exams/{exam['id']}/audit")
    assert status == 401
    status, _ = http_json(hub, "GET", "/v1/exams/no-such-exam/audit", admin_token(hub))
    assert status == 404
    for bad in ("limit=0", "limit=1001", "limit=ten", "attemptId=%00"):
        status, body = http_json(hub, "GET", f"/v1/exams/{exam['id']}/audit?{bad}", admin_token(hub))
        assert status == 400, (bad, body)


def test_watching_an_unknown_exam_is_not_found(hub):
    with hub.client("proctor", uid("proc")) as p:
        p.error("proctor.watch", "not_found", examId="no-such-exam")
        p.error("proctor.watch", "bad_request", examId="not an id")
        p.error("proctor.watch", "bad_request")


# ------------------------------------------------------------------------------------------------ profiles


def test_exams_choose_a_profile_and_override_it(hub):
    status, body = post_exam(hub, exam_def(proctoring={"profile": "nope"}))
    assert status == 400 and "no profile named" in body["error"]["message"]
    status, body = post_exam(hub, exam_def(proctoring={"profile": "default", "overrides": {"disable": ["nothing"]}}))
    assert status == 400 and "no rule" in body["error"]["message"]
    status, body = post_exam(hub, exam_def(proctoring={"profile": "default", "overrides": {"rules": [{"code": "x"}]}}))
    assert status == 400 and "overrides.rules[0]" in body["error"]["message"]
    status, body = post_exam(hub, exam_def(proctoring={"profile": "default", "sensitivity": 3}))
    assert status == 400 and "proctoring.sensitivity" in body["error"]["message"]

    overrides = {"disable": ["paste"], "rules": [
        {"code": "copy", "severity": "warning", "type": "match", "event": "clipboard.copy"}]}
    exam = create_exam(hub, proctoring={"profile": "default", "overrides": overrides})
    assert exam["proctoring"] == {"profile": "default", "overrides": overrides}
    with hub.client("proctor", uid("proc")) as p, hub.client("candidate", uid("c")) as c:
        p.ok("proctor.watch", examId=exam["id"])
        aid = join(c, exam["id"])["attemptId"]
        telemetry_ok(c, aid, ev("clipboard.paste"))
        telemetry_ok(c, aid, ev("clipboard.copy"))
        flags = proctor_events(p, exam["id"], "flag.raised")
        assert [f["data"]["code"] for f in flags] == ["copy"]
        time.sleep(0.2)
        assert not [e for e in drain_events(p) if e["type"] == "flag.raised"]


def test_operator_profiles_from_a_folder(start_hub, tmp_path):
    import json
    folder = tmp_path / "profiles"
    (folder / "t1").mkdir(parents=True)
    (folder / "t1" / "lenient.json").write_text(json.dumps({"name": "lenient", "rules": [
        {"code": "devtools", "severity": "warning", "type": "match", "event": "devtools.open"}]}))
    hub = start_hub({"EXAMHUB_PROFILES_DIR": str(folder)})
    exam = create_exam(hub, proctoring={"profile": "lenient"})
    status, body = post_exam(hub, exam_def(proctoring={"profile": "lenient"}), tenant="t2")
    assert status == 400, "a tenant's profile is its own"
    with hub.client("proctor", uid("proc")) as p, hub.client("candidate", uid("c")) as c:
        p.ok("proctor.watch", examId=exam["id"])
        aid = join(c, exam["id"])["attemptId"]
        telemetry_ok(c, aid, ev("devtools.open"), ev("face.count", n=3))
        flags = proctor_events(p, exam["id"], "flag.raised")
        assert [(f["data"]["code"], f["data"]["severity"]) for f in flags] == [("devtools", "warning")]


def test_a_broken_profile_file_stops_the_start_with_its_name(tmp_path):
    from hubclient import binary_path, clean_env
    import subprocess
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "strict2.json").write_text('{"name": "strict2", "rules": [{"code": "a", "severity": "loud"}]}')
    proc = subprocess.run([str(binary_path()), "serve", "--port", "0"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=30, env=clean_env(EXAMHUB_PROFILES_DIR=str(folder)))
    assert proc.returncode != 0
    assert "strict2.json" in proc.stderr and "rules[0].severity" in proc.stderr, proc.stderr
