"""Live assessment sessions over the socket (PROTOCOL.md sections 3 and 4, guarantees 5.1 to 5.3 and 5.6):
`attempt.join`, `answer.save`, `attempt.submit`, the `attempt:<id>` channel, durability of acks in the SQLite
file, idempotent opIds, baseVersion conflicts, per-type validation, two tabs, bad input."""
from __future__ import annotations

import json
import threading

import pytest

from examkit import (attempt_doc, create_exam, db_answer, db_answers, db_rows, drain_events, events_of, join, save,
                     save_error, save_ok, ts, uid, wait_until)


@pytest.fixture
def exam(hub):
    return create_exam(hub)


@pytest.fixture
def cand(hub, exam):
    """A candidate socket joined to a fresh attempt: (client, attemptId)."""
    sub = uid("cand")
    with hub.client("candidate", sub, label=sub) as c:
        data = join(c, exam["id"])
        yield c, data["attemptId"]


# --------------------------------------------------------------------------------------- attempt.join


def test_join_creates_an_attempt_and_returns_the_exam(hub, exam):
    with hub.client("candidate", uid("cand")) as c:
        data = join(c, exam["id"])
        assert data["state"] == "in_progress" and data["answers"] == {}
        assert data["questions"] == exam["questions"]
        assert abs(ts(data["serverTime"]) - ts(data["deadline"]) + exam["durationSec"]) < 1
        rows = db_rows(hub.db_path, "SELECT exam_id, state FROM attempts WHERE id = ?", (data["attemptId"],))
        assert rows == [(exam["id"], "in_progress")]


def test_join_again_returns_the_same_attempt_with_current_answers(hub, exam):
    sub = uid("cand")
    with hub.client("candidate", sub) as c:
        first = join(c, exam["id"])
        aid = first["attemptId"]
        save_ok(c, aid, "q-text", "v1")
        save_ok(c, aid, "q-text", "v2")
        save_ok(c, aid, "q-number", 42)
        again = join(c, exam["id"])  # on the same socket: harmless
        assert again["attemptId"] == aid and again["deadline"] == first["deadline"]
        assert again["answers"] == {"q-text": {"value": "v2", "version": 2}, "q-number": {"value": 42, "version": 1}}
    with hub.client("candidate", sub) as other_socket:
        third = join(other_socket, exam["id"])
        assert third["attemptId"] == aid and third["answers"] == again["answers"]
    assert len(db_rows(hub.db_path, "SELECT id FROM attempts WHERE exam_id = ? AND candidate = ?",
                       (exam["id"], sub))) == 1


def test_one_attempt_per_candidate_even_when_joins_race(hub, exam):
    sub = uid("cand")
    clients = [hub.client("candidate", sub, label=f"tab{i}") for i in range(6)]
    try:
        rids = []
        for c in clients:
            rid = c.next_id()
            c.send({"op": "attempt.join", "id": rid, "examId": exam["id"]})
            rids.append(rid)
        ids = {c.reply(rid, "attempt.join")["data"]["attemptId"] for c, rid in zip(clients, rids)}
        assert len(ids) == 1, ids
    finally:
        for c in clients:
            c.close()


def test_each_candidate_gets_its_own_attempt(hub, exam):
    with hub.client("candidate", uid("cand")) as a, hub.client("candidate", uid("cand")) as b:
        assert join(a, exam["id"])["attemptId"] != join(b, exam["id"])["attemptId"]


def test_join_refusals(hub, exam):
    eid = exam["id"]
    with hub.client("proctor", "p-join") as p, hub.client("admin", "a-join") as a, \
            hub.client("service", "s-join") as s:
        for c in (p, a, s):
            c.error("attempt.join", "forbidden", examId=eid)
    with hub.client("candidate", uid("cand")) as c:
        c.error("attempt.join", "not_found", examId=uid("e"))
        c.error("attempt.join", "bad_request")
        c.error("attempt.join", "bad_request", examId=5)
        c.error("attempt.join", "bad_request", examId="")
        c.error("attempt.join", "bad_request", examId="a/b")
        c.error("attempt.join", "too_large", examId="x" * 129)  # over a limit: too_large, like opId
        c.ping()
    with hub.client("candidate", uid("cand"), exams=[uid("e")]) as limited:
        limited.error("attempt.join", "forbidden", examId=eid)
    with hub.client("candidate", uid("cand"), exams=[eid]) as allowed:
        join(allowed, eid)
    with hub.client("candidate", uid("cand"), tenant="t2") as other_tenant:
        other_tenant.error("attempt.join", "not_found", examId=eid)


def test_join_subscribes_before_the_reply(hub, exam):
    """A save from another socket right after the join reply arrives reaches the joining socket as an event."""
    sub = uid("cand")
    with hub.client("candidate", sub, label="first tab") as first:
        aid = join(first, exam["id"])["attemptId"]
        for i in range(5):
            with hub.client("candidate", sub, label=f"new tab {i}") as tab:
                join(tab, exam["id"])
                saved = save_ok(first, aid, "q-text", f"after join {i}")
                ev = events_of(tab, f"attempt:{aid}", "answer.saved", timeout=3)[0]
                assert ev["data"]["version"] == saved["version"] and ev["data"]["value"] == f"after join {i}"
            drain_events(first)


def test_join_racing_a_save_misses_nothing(start_hub):
    """A join sent while another tab saves: each save is either in the join's answers or arrives as an
    answer.saved event afterwards (PROTOCOL.md 4: subscribed "before its reply is sent, so no event is missed in
    between"). The other tab pipelines three saves right behind the join; repeated 100 times, since the window is
    narrow (four event loops, so that the joining and the saving socket are mostly on different ones)."""
    hub = start_hub({"EXAMHUB_THREADS": "4"})
    exam = create_exam(hub)
    sub = uid("cand")
    missed = []
    with hub.client("candidate", sub, label="saver") as saver:
        aid = join(saver, exam["id"])["attemptId"]
        for i in range(100):
            with hub.client("candidate", sub, label=f"joiner {i}") as joiner:
                jid = joiner.next_id()
                joiner.send({"op": "attempt.join", "id": jid, "examId": exam["id"]})
                rids = []
                for k in range(3):
                    rid = saver.next_id()
                    saver.send({"op": "answer.save", "id": rid, "attemptId": aid, "qid": "q-number",
                                "value": i * 10 + k, "opId": uid("op")})
                    rids.append(rid)
                acked = {}
                for k, rid in enumerate(rids):
                    r = saver.reply(rid, "answer.save")
                    assert r["ok"], r
                    acked[r["data"]["version"]] = i * 10 + k
                data = joiner.reply(jid, "attempt.join")["data"]
                seen = data["answers"].get("q-number", {}).get("version", 0)
                if seen in acked:
                    assert data["answers"]["q-number"]["value"] == acked[seen]
                wanted = {v: value for v, value in acked.items() if v > seen}
                got = {}
                try:
                    while set(got) != set(wanted):
                        ev = events_of(joiner, f"attempt:{aid}", "answer.saved", timeout=1)[0]
                        if ev["data"]["version"] > seen:  # older ones may come too (subscribed before the read)
                            got[ev["data"]["version"]] = ev["data"]["value"]
                except TimeoutError:
                    pass
                if got != wanted:
                    missed.append(f"iteration {i}: saves acked as v{sorted(acked)}, the join reply shows v{seen}, "
                                  f"events came for v{sorted(got)}")
            drain_events(saver)
    assert not missed, f"{len(missed)} of 100 joins missed a concurrent save:\n" + "\n".join(missed[:5])


# --------------------------------------------------------------------------------------- answer.save


def test_versions_count_per_question_and_every_ack_is_already_in_the_file(hub, cand):
    c, aid = cand
    for n in range(1, 4):
        for qid, value in [("q-text", f"draft {n}"), ("q-number", n * 1.5)]:
            data = save_ok(c, aid, qid, value)
            assert data["version"] == n
            # Guarantee 5.1: the ack comes after the commit, so another connection sees it right now.
            assert db_answer(hub.db_path, aid, qid) == (value, n)
    assert db_answer(hub.db_path, aid, "q-single") is None


def test_saved_at_is_server_time_and_monotonic(hub, cand):
    c, aid = cand
    server_now = ts(c.ping()["serverTime"])
    stamps = [ts(save_ok(c, aid, "q-text", f"t{i}")["savedAt"]) for i in range(3)]
    assert stamps == sorted(stamps) and abs(stamps[0] - server_now) < 5
    last = save_ok(c, aid, "q-text", "last")
    assert attempt_doc(hub, aid)["answers"]["q-text"]["savedAt"] == last["savedAt"]


def test_same_op_id_yields_the_same_reply_and_one_version(hub, exam):
    sub = uid("cand")
    with hub.client("candidate", sub, label="tab1") as c, hub.client("candidate", sub, label="tab2") as other:
        aid = join(c, exam["id"])["attemptId"]
        join(other, exam["id"])
        op = uid("op")
        first = save(c, aid, "q-text", "once", op_id=op)
        assert first["ok"] and first["data"]["version"] == 1
        for value in ["once", "a different value, same opId"]:
            again = save(c, aid, "q-text", value, op_id=op)
            assert again["data"] == first["data"], (first, again)
        replay_elsewhere = save(other, aid, "q-text", "once", op_id=op)  # the retry may come from another tab
        assert replay_elsewhere["data"] == first["data"]
        assert db_answer(hub.db_path, aid, "q-text") == ("once", 1)
        # One version, one answer.saved event.
        events = [e for e in drain_events(other) if e["type"] == "answer.saved"]
        assert [e["data"]["version"] for e in events] == [1], events
        assert save_ok(c, aid, "q-text", "next")["version"] == 2


def test_pipelined_duplicates_of_one_op_id_make_one_version(hub, cand):
    """The same opId sent five times without waiting (a client retrying on a slow link)."""
    c, aid = cand
    op = uid("op")
    rids = []
    for _ in range(5):
        rid = c.next_id()
        c.send({"op": "answer.save", "id": rid, "attemptId": aid, "qid": "q-number", "value": 7, "opId": op})
        rids.append(rid)
    replies = [c.reply(rid, "answer.save") for rid in rids]
    assert all(r["ok"] for r in replies), replies
    assert {json.dumps(r["data"], sort_keys=True) for r in replies} == {json.dumps(replies[0]["data"], sort_keys=True)}
    assert replies[0]["data"]["version"] == 1
    assert db_answer(hub.db_path, aid, "q-number") == (7, 1)


def test_pipelined_saves_get_consecutive_versions_in_order(hub, cand):
    c, aid = cand
    rids = []
    for i in range(20):
        rid = c.next_id()
        c.send({"op": "answer.save", "id": rid, "attemptId": aid, "qid": "q-text", "value": f"v{i}",
                "opId": uid("op")})
        rids.append(rid)
    versions = [c.reply(rid, "answer.save")["data"]["version"] for rid in rids]
    assert versions == list(range(1, 21))
    assert db_answer(hub.db_path, aid, "q-text") == ("v19", 20)


def test_base_version_conflict_carries_the_current_answer(hub, cand):
    c, aid = cand
    assert save_ok(c, aid, "q-text", "first", base=0)["version"] == 1  # 0 = no answer yet
    err = save_error(c, aid, "q-text", "stale", "conflict", base=0)
    assert err["details"] == {"version": 1, "value": "first"}
    assert save_ok(c, aid, "q-text", "second", base=1)["version"] == 2
    for stale in (0, 1, 3, 99):
        err = save_error(c, aid, "q-text", "stale", "conflict", base=stale)
        assert err["details"] == {"version": 2, "value": "second"}
    err = save_error(c, aid, "q-number", 5, "conflict", base=4)  # unanswered question: current version 0
    assert err["details"]["version"] == 0 and err["details"]["value"] is None
    assert db_answer(hub.db_path, aid, "q-text") == ("second", 2)
    assert db_answer(hub.db_path, aid, "q-number") is None
    assert save_ok(c, aid, "q-text", "no base: last writer wins")["version"] == 3
    assert save_ok(c, aid, "q-text", "null base", base=None)["version"] == 4


def test_two_tabs_racing_with_base_version_one_wins(hub, exam):
    sub = uid("cand")
    with hub.client("candidate", sub, label="tab1") as t1, hub.client("candidate", sub, label="tab2") as t2:
        aid = join(t1, exam["id"])["attemptId"]
        join(t2, exam["id"])
        save_ok(t1, aid, "q-text", "base")
        r1, r2 = t1.next_id(), t2.next_id()
        t1.send({"op": "answer.save", "id": r1, "attemptId": aid, "qid": "q-text", "value": "from tab1",
                 "opId": uid("op"), "baseVersion": 1})
        t2.send({"op": "answer.save", "id": r2, "attemptId": aid, "qid": "q-text", "value": "from tab2",
                 "opId": uid("op"), "baseVersion": 1})
        a, b = t1.reply(r1, "answer.save"), t2.reply(r2, "answer.save")
        assert sorted([a["ok"], b["ok"]]) == [False, True], (a, b)
        winner, loser = (a, b) if a["ok"] else (b, a)
        assert winner["data"]["version"] == 2 and loser["error"]["code"] == "conflict"
        won_value = "from tab1" if a["ok"] else "from tab2"
        assert loser["error"]["details"] == {"version": 2, "value": won_value}
        assert db_answer(hub.db_path, aid, "q-text") == (won_value, 2)


VALID = [
    ("q-single", "A"), ("q-single", "C"), ("q-single", None),
    ("q-multi", ["x"]), ("q-multi", ["z", "x", "y"]), ("q-multi", []), ("q-multi", None),
    ("q-text", ""), ("q-text", "anything ☃"), ("q-text", None),
    ("q-number", 0), ("q-number", -3), ("q-number", 2.75), ("q-number", 1e300), ("q-number", None),
]

INVALID = [
    ("q-single", "D"), ("q-single", "a"), ("q-single", 1), ("q-single", ["A"]), ("q-single", True),
    ("q-single", {"choice": "A"}),
    ("q-multi", "x"), ("q-multi", ["x", "x"]), ("q-multi", ["x", "w"]), ("q-multi", [1]), ("q-multi", [["x"]]),
    ("q-multi", {"x": True}),
    ("q-text", 5), ("q-text", ["text"]), ("q-text", {"t": "x"}), ("q-text", False),
    ("q-number", "3"), ("q-number", True), ("q-number", [1]), ("q-number", {"n": 1}),
]


@pytest.mark.parametrize("qid,value", VALID, ids=[f"{q}={json.dumps(v)}" for q, v in VALID])
def test_values_valid_for_the_question_type_are_saved(hub, cand, qid, value):
    c, aid = cand
    assert save_ok(c, aid, qid, value)["version"] == 1
    assert db_answer(hub.db_path, aid, qid) == (value, 1)


@pytest.mark.parametrize("qid,value", INVALID, ids=[f"{q}={json.dumps(v)}" for q, v in INVALID])
def test_values_invalid_for_the_question_type_are_bad_request_and_change_nothing(hub, cand, qid, value):
    c, aid = cand
    save_ok(c, aid, qid, None)
    save_error(c, aid, qid, value, "bad_request")
    assert db_answer(hub.db_path, aid, qid) == (None, 1)
    c.ping()


def test_null_clears_an_answer_with_a_new_version(hub, cand):
    c, aid = cand
    save_ok(c, aid, "q-single", "B")
    assert save_ok(c, aid, "q-single", None)["version"] == 2
    assert attempt_doc(hub, aid)["answers"]["q-single"]["value"] is None
    assert db_answer(hub.db_path, aid, "q-single") == (None, 2)


def test_value_size_limit_is_64_kib_of_json(hub, cand):
    c, aid = cand
    at_limit = "x" * (65536 - 2)  # 65,536 bytes with its quotes
    assert save_ok(c, aid, "q-text", at_limit)["version"] == 1
    save_error(c, aid, "q-text", at_limit + "x", "too_large")
    save_error(c, aid, "q-text", "y" * 200_000, "too_large")
    assert db_answer(hub.db_path, aid, "q-text") == (at_limit, 1)
    c.ping()


def test_unknown_question_is_bad_request(hub, cand):
    c, aid = cand
    err = save_error(c, aid, "q-nope", "x", "bad_request")
    assert "q-nope" in err["message"]
    assert db_answers(hub.db_path, aid) == {}


def test_save_refusals_by_attempt_and_role(hub, exam):
    with hub.client("candidate", uid("cand"), label="owner") as owner, \
            hub.client("candidate", uid("cand"), label="thief") as thief:
        aid = join(owner, exam["id"])["attemptId"]
        join(thief, exam["id"])
        save_error(thief, aid, "q-text", "not mine", "forbidden")
        save_error(owner, uid("a"), "q-text", "x", "not_found")
        for role in ("proctor", "admin", "service"):
            with hub.client(role, f"{role}-save") as c:
                save_error(c, aid, "q-text", "x", "forbidden")
    with hub.client("candidate", "same-sub-" + aid[-6:], tenant="t2") as t2:
        save_error(t2, aid, "q-text", "x", "not_found")  # another tenant's attempt does not exist for it
    assert db_answers(hub.db_path, aid) == {}


def test_token_exams_claim_is_respected_after_the_join(hub, exam):
    """A token whose `exams` claim excludes the exam (PROTOCOL.md 1: "exam ids the token is valid for") is not
    valid for that exam's attempt: saving or submitting with it is forbidden, even for the attempt's owner."""
    sub = uid("cand")
    with hub.client("candidate", sub) as owner:
        aid = join(owner, exam["id"])["attemptId"]
    with hub.client("candidate", sub, exams=[uid("e")], label="token for another exam") as scoped:
        save_error(scoped, aid, "q-text", "x", "forbidden")
        scoped.error("attempt.submit", "forbidden", attemptId=aid, opId=uid("s"))
    assert db_answers(hub.db_path, aid) == {}
    assert attempt_doc(hub, aid)["state"] == "in_progress"


@pytest.mark.parametrize("fields", [
    {"qid": "q-text", "value": "x", "opId": "o1"},  # no attemptId
    {"attemptId": "ATTEMPT", "value": "x", "opId": "o1"},  # no qid
    {"attemptId": "ATTEMPT", "qid": "q-text", "opId": "o1"},  # no value
    {"attemptId": "ATTEMPT", "qid": "q-text", "value": "x"},  # no opId
    {"attemptId": "ATTEMPT", "qid": "q-text", "value": "x", "opId": ""},
    {"attemptId": 5, "qid": "q-text", "value": "x", "opId": "o1"},
    {"attemptId": "ATTEMPT", "qid": ["q-text"], "value": "x", "opId": "o1"},
    {"attemptId": "ATTEMPT", "qid": "q-text", "value": "x", "opId": 17},
    {"attemptId": "ATTEMPT", "qid": "q-text", "value": "x", "opId": "o" * 129},
    {"attemptId": "ATTEMPT", "qid": "q-text", "value": "x", "opId": "o1", "baseVersion": -1},
    {"attemptId": "ATTEMPT", "qid": "q-text", "value": "x", "opId": "o1", "baseVersion": "1"},
    {"attemptId": "ATTEMPT", "qid": "q-text", "value": "x", "opId": "o1", "baseVersion": 1.5},
], ids=["no attemptId", "no qid", "no value", "no opId", "empty opId", "attemptId number", "qid array",
        "opId number", "opId too long", "baseVersion negative", "baseVersion string", "baseVersion fraction"])
def test_malformed_save_is_bad_request_then_ping_and_bystander_go_on(hub, cand, fields):
    c, aid = cand
    fields = {k: (aid if v == "ATTEMPT" else v) for k, v in fields.items()}
    with hub.client("proctor", "p-bystander", label="bystander") as bystander:
        # A field over its length limit may be called too_large; anything else malformed is bad_request.
        expected = "too_large" if any(isinstance(v, str) and len(v) > 128 for v in fields.values()) else "bad_request"
        c.error("answer.save", expected, **fields)
        c.ping()
        bystander.ping()
    assert db_answers(hub.db_path, aid) == {}
    assert save_ok(c, aid, "q-text", "still works")["version"] == 1


def test_answer_saved_reaches_the_other_tab_with_seq_increasing(hub, exam):
    sub = uid("cand")
    with hub.client("candidate", sub, label="tab1") as t1, hub.client("candidate", sub, label="tab2") as t2:
        aid = join(t1, exam["id"])["attemptId"]
        assert join(t2, exam["id"])["attemptId"] == aid
        ch = f"attempt:{aid}"
        plan = [(t1, t2, "q-text", "one"), (t2, t1, "q-text", "two"), (t1, t2, "q-multi", ["y"]),
                (t2, t1, "q-number", 3), (t1, t2, "q-text", None)]
        seqs = {t1.label: [], t2.label: []}
        for sender, receiver, qid, value in plan:
            saved = save_ok(sender, aid, qid, value)
            ev = events_of(receiver, ch, "answer.saved")[0]
            assert ev["data"]["qid"] == qid and ev["data"]["value"] == value
            assert ev["data"]["version"] == saved["version"]
            seqs[receiver.label].append(ev["seq"])
            # The sender may get its own event as well; it must not get anything else.
            for e in drain_events(sender):
                assert e["ch"] == ch and e["type"] == "answer.saved", e
                seqs[sender.label].append(e["seq"])
        for label, got in seqs.items():
            assert got == sorted(got) and len(set(got)) == len(got), (label, got)
        # One channel, one seq: the events of both tabs together count up by one.
        merged = sorted(set(seqs[t1.label]) | set(seqs[t2.label]))
        assert merged == list(range(merged[0], merged[0] + len(plan))), merged


def test_answer_saved_events_follow_version_order(hub, exam):
    """Six tabs save the same question concurrently; an observer of `attempt:<id>` must see that question's
    versions in the order of the channel's seq. Otherwise a client applying events in seq order (as the
    contract's `seq` invites) ends up showing an older value than the stored one."""
    sub = uid("cand")
    tabs = [hub.client("candidate", sub, label=f"tab{i}") for i in range(6)]
    try:
        aid = join(tabs[0], exam["id"])["attemptId"]
        for t in tabs[1:]:
            join(t, exam["id"])
        with hub.client("proctor", "p-order", label="observer") as observer:
            observer.ok("subscribe", ch=f"attempt:{aid}")
            errors: list[BaseException] = []

            def run(t):
                try:
                    for i in range(30):
                        save_ok(t, aid, "q-number", i)
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)

            threads = [threading.Thread(target=run, args=(t,)) for t in tabs]
            for th in threads:
                th.start()
            for th in threads:
                th.join(30)
            assert not errors, errors
            events = events_of(observer, f"attempt:{aid}", "answer.saved", n=180, timeout=20)
            seqs = [e["seq"] for e in events]
            versions = [e["data"]["version"] for e in events]
            assert seqs == list(range(seqs[0], seqs[0] + 180))
            assert sorted(versions) == list(range(1, 181))
            inversions = [(a, b) for a, b in zip(versions, versions[1:]) if b < a]
            assert not inversions, (f"{len(inversions)} places where a lower version follows a higher one in seq "
                                    f"order, e.g. {inversions[:5]}; last event v{versions[-1]}, stored "
                                    f"v{db_answer(hub.db_path, aid, 'q-number')[1]}")
    finally:
        for t in tabs:
            t.close()


def test_answer_saved_does_not_leak_to_other_candidates(hub, exam):
    with hub.client("candidate", uid("cand"), label="a") as a, hub.client("candidate", uid("cand"), label="b") as b:
        aid = join(a, exam["id"])["attemptId"]
        join(b, exam["id"])
        save_ok(a, aid, "q-text", "private")
        b.assert_no_event()
        b.error("subscribe", "forbidden", ch=f"attempt:{aid}")


def test_concurrent_saves_from_many_tabs_get_unique_gapless_versions(hub, exam):
    sub = uid("cand")
    tabs = [hub.client("candidate", sub, label=f"tab{i}") for i in range(4)]
    try:
        aid = join(tabs[0], exam["id"])["attemptId"]
        for t in tabs[1:]:
            join(t, exam["id"])
        versions: list[int] = []
        lock = threading.Lock()
        errors: list[BaseException] = []

        def run(t, n):
            try:
                for i in range(n):
                    v = save_ok(t, aid, "q-number", i)["version"]
                    with lock:
                        versions.append(v)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=run, args=(t, 15)) for t in tabs]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        assert not errors, errors
        assert sorted(versions) == list(range(1, 61))
        assert db_answer(hub.db_path, aid, "q-number")[1] == 60
    finally:
        for t in tabs:
            t.close()


# --------------------------------------------------------------------------------------- attempt.submit


def test_submit_then_replay_then_closed(hub, exam):
    sub = uid("cand")
    with hub.client("candidate", sub, label="tab1") as t1, hub.client("candidate", sub, label="tab2") as t2, \
            hub.client("proctor", "p-submit", label="proctor") as proctor:
        aid = join(t1, exam["id"])["attemptId"]
        join(t2, exam["id"])
        proctor.ok("subscribe", ch=f"attempt:{aid}")
        save_ok(t1, aid, "q-text", "final answer")
        op = uid("submit")
        data = t1.ok("attempt.submit", attemptId=aid, opId=op)
        assert data["state"] == "submitted"
        submitted_at = data["submittedAt"]
        for other in (t2, proctor):
            ev = events_of(other, f"attempt:{aid}", "attempt.submitted")[0]
            assert ev["data"]["reason"] == "candidate", ev
        # The same opId again: the same reply, no new event.
        assert t1.ok("attempt.submit", attemptId=aid, opId=op) == data
        assert t2.ok("attempt.submit", attemptId=aid, opId=op) == data
        # Another opId: the attempt is closed.
        t1.error("attempt.submit", "attempt_closed", attemptId=aid, opId=uid("submit"))
        save_error(t2, aid, "q-text", "too late", "attempt_closed")
        save_error(t1, aid, "q-number", 1, "attempt_closed")
        for other in (t2, proctor):
            assert not [e for e in drain_events(other) if e["type"] == "attempt.submitted"]
    doc = attempt_doc(hub, aid)
    assert doc["state"] == "submitted" and doc["reason"] == "candidate" and doc["submittedAt"] == submitted_at
    assert doc["answers"]["q-text"]["value"] == "final answer" and set(doc["answers"]) == {"q-text"}
    assert db_rows(hub.db_path, "SELECT state, reason FROM attempts WHERE id = ?", (aid,)) == [("submitted",
                                                                                                 "candidate")]
    with hub.client("candidate", sub) as later:
        again = join(later, exam["id"])
        assert again["attemptId"] == aid and again["state"] == "submitted"
        assert again["answers"] == {"q-text": {"value": "final answer", "version": 1}}


def test_submit_after_pipelined_saves_commits_them_first(hub, cand):
    """Saves sent before a submit on the same socket, without waiting for their acks, are all acked ok."""
    c, aid = cand
    rids = []
    for i in range(10):
        rid = c.next_id()
        c.send({"op": "answer.save", "id": rid, "attemptId": aid, "qid": "q-number", "value": i, "opId": uid("op")})
        rids.append(rid)
    sid = c.next_id()
    c.send({"op": "attempt.submit", "id": sid, "attemptId": aid, "opId": uid("submit")})
    replies = [c.reply(rid, "answer.save") for rid in rids]
    assert all(r["ok"] for r in replies), replies
    assert c.reply(sid, "attempt.submit")["data"]["state"] == "submitted"
    assert db_answer(hub.db_path, aid, "q-number") == (9, 10)


def test_submit_refusals(hub, exam):
    with hub.client("candidate", uid("cand"), label="owner") as owner, \
            hub.client("candidate", uid("cand"), label="other") as other:
        aid = join(owner, exam["id"])["attemptId"]
        other.error("attempt.submit", "forbidden", attemptId=aid, opId=uid("s"))
        owner.error("attempt.submit", "not_found", attemptId=uid("a"), opId=uid("s"))
        owner.error("attempt.submit", "bad_request", attemptId=aid)
        owner.error("attempt.submit", "bad_request", opId=uid("s"))
        owner.error("attempt.submit", "bad_request", attemptId=aid, opId=5)
        for role in ("proctor", "admin"):
            with hub.client(role, f"{role}-submit") as c:
                c.error("attempt.submit", "forbidden", attemptId=aid, opId=uid("s"))
        owner.ping()
    assert attempt_doc(hub, aid)["state"] == "in_progress"


def test_submit_op_id_does_not_collide_with_a_save_op_id(hub, cand):
    """opIds are client-chosen strings: a save whose opId happens to be "submit:<x>" must not make a later
    `attempt.submit` with opId <x> look like a replay (it must submit, and its reply must say submitted)."""
    c, aid = cand
    save_ok(c, aid, "q-text", "answer", op_id="submit:final")
    r = c.request("attempt.submit", attemptId=aid, opId="final")  # the reply is checked against the contract
    assert r["ok"] and r["data"]["state"] == "submitted", r
    assert attempt_doc(hub, aid)["state"] == "submitted"


def test_save_op_id_equal_to_a_submit_key_is_attempt_closed_not_internal(hub, cand):
    c, aid = cand
    c.ok("attempt.submit", attemptId=aid, opId="done")
    save_error(c, aid, "q-text", "late", "attempt_closed", op_id="submit:done")


# --------------------------------------------------------------------------------------- bad input (5.6)

BAD_OPS = [
    ("attempt.join", {"examId": None}, "bad_request"),
    ("attempt.join", {"examId": {"id": "e"}}, "bad_request"),
    ("attempt.join", {"examId": "é" * 10}, "bad_request"),
    ("answer.save", {"attemptId": "ATTEMPT", "qid": "q-text", "value": "x", "opId": None}, "bad_request"),
    ("answer.save", {"attemptId": "ATTEMPT", "qid": "", "value": "x", "opId": "o"}, "bad_request"),
    ("answer.save", {"attemptId": "ATTEMPT", "qid": "q-number", "value": "NaN", "opId": "o"}, "bad_request"),
    ("answer.save", {"attemptId": "ATTEMPT", "qid": "q-text", "value": "x" * 70_000, "opId": "o"}, "too_large"),
    ("answer.save", {"attemptId": "ATTEMPT", "qid": "q-text", "value": {"deep": [[[[["x"]]]]]}, "opId": "o"},
     "bad_request"),
    ("answer.save", {"attemptId": "a-" + "f" * 20, "qid": "q-text", "value": "x", "opId": "o"}, "not_found"),
    ("attempt.submit", {"attemptId": None, "opId": "s"}, "bad_request"),
    ("attempt.submit", {"attemptId": "ATTEMPT", "opId": ""}, "bad_request"),
    ("attempt.submit", {"attemptId": ["ATTEMPT"], "opId": "s"}, "bad_request"),
]


@pytest.mark.parametrize("op,fields,code", BAD_OPS, ids=[f"{o}-{i}" for i, (o, _, _) in enumerate(BAD_OPS)])
def test_bad_input_on_attempt_ops_changes_nothing_and_connections_go_on(hub, cand, op, fields, code):
    c, aid = cand
    fields = {k: (aid if v == "ATTEMPT" else [aid] if v == ["ATTEMPT"] else v) for k, v in fields.items()}
    with hub.client("candidate", uid("bystander"), label="bystander") as bystander:
        c.error(op, code, **fields)
        c.ping()
        bystander.ping()
        c.assert_no_event()
    assert db_answers(hub.db_path, aid) == {}
    assert attempt_doc(hub, aid)["state"] == "in_progress"


def test_attempt_ops_without_id_get_no_reply_but_errors_are_events(hub, cand):
    c, aid = cand
    c.send({"op": "answer.save", "attemptId": aid, "qid": "q-text", "value": "no id", "opId": uid("op")})
    c.send({"op": "answer.save", "attemptId": aid, "qid": "q-nope", "value": "x", "opId": uid("op")})
    ev = events_of(c, "conn", "error")[0]
    assert ev["data"]["code"] == "bad_request"
    # The first save (no id) is still applied, only not answered.
    wait_until(lambda: db_answer(hub.db_path, aid, "q-text") == ("no id", 1), 5, what="the save without id")
    assert all(e["type"] == "answer.saved" for e in drain_events(c))
