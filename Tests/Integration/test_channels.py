"""Channels (PROTOCOL.md section 4): subscribe, publish (an addition for service/admin tokens), unsubscribe,
fan-out, per-channel seq, permissions, tenant isolation."""
from __future__ import annotations

import pytest

from examkit import uid  # one counter for the whole suite: ids never collide across modules


def risk(attempt: str, value: float) -> dict:
    return {"attemptId": attempt, "risk": value}


def test_publish_fans_out_to_every_subscriber_with_seq_increasing_by_one(hub):
    exam = uid("e")
    ch = f"exam:{exam}:proctor"
    subs = [hub.client("proctor", "p1", label="proctor"), hub.client("admin", "a1", label="admin"),
            hub.client("service", "s-watch", label="service"), hub.client("proctor", "p2", exams=[exam],
                                                                          label="proctor with exams")]
    publisher = hub.client("service", "s-pub", label="publisher")
    try:
        first = None
        for s in subs:
            data = s.ok("subscribe", ch=ch)
            assert data["seq"] == 0 and data["recovered"] is False
            first = first or data["epoch"]
            assert data["epoch"] == first  # one epoch per channel
        replies = [publisher.ok("publish", ch=ch, type="risk.changed", data=risk(f"a{i}", 10 * i)) for i in range(5)]
        assert [r["seq"] for r in replies] == [1, 2, 3, 4, 5]
        assert {r["epoch"] for r in replies} == {first}
        for s in subs:
            events = s.events_n(5)  # each validated against events/risk.changed.json
            assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
            assert all(e["ch"] == ch and e["type"] == "risk.changed" for e in events)
            assert [e["data"] for e in events] == [risk(f"a{i}", 10 * i) for i in range(5)]
            s.assert_no_event()
        publisher.assert_no_event()  # publishing does not subscribe
        # A late subscriber sees the current seq and only what comes next.
        late = hub.client("proctor", "p3", label="late")
        subs.append(late)
        data = late.ok("subscribe", ch=ch)
        assert data["seq"] == 5 and data["epoch"] == first and data["recovered"] is False
        assert publisher.ok("publish", ch=ch, type="candidate.joined",
                            data={"attemptId": "a9", "candidate": "c9"})["seq"] == 6
        for s in subs:
            e = s.event()
            assert (e["seq"], e["type"], e["data"]) == (6, "candidate.joined", {"attemptId": "a9", "candidate": "c9"})
    finally:
        for c in subs + [publisher]:
            c.close()


def test_admin_may_publish_and_event_carries_server_timestamp(hub):
    ch = f"exam:{uid('e')}:proctor"
    with hub.client("proctor", "p1") as watcher, hub.client("admin", "a-pub") as admin:
        watcher.ok("subscribe", ch=ch)
        admin.ok("publish", ch=ch, type="flag.raised",
                 data={"attemptId": "a1", "code": "paste", "severity": "info", "at": "2026-01-01T00:00:00.000Z",
                       "evidence": {}})
        e = watcher.event()
        assert e["type"] == "flag.raised" and e["seq"] == 1 and e["ts"].endswith("Z")


@pytest.mark.parametrize("role", ["proctor", "candidate"])
def test_publish_by_proctor_or_candidate_is_forbidden(hub, role):
    ch = f"exam:{uid('e')}:proctor"
    with hub.client("proctor", "p1") as watcher, hub.client(role, "x1") as c:
        watcher.ok("subscribe", ch=ch)
        c.error("publish", "forbidden", ch=ch, type="risk.changed", data=risk("a1", 1))
        watcher.assert_no_event()


def test_publish_validation(hub):
    exam = uid("e")
    ch = f"exam:{exam}:proctor"
    with hub.client("service", "s1", exams=[exam]) as s:
        s.error("publish", "forbidden", ch=f"exam:{uid('other')}:proctor", type="risk.changed", data=risk("a", 1))
        s.error("publish", "bad_request", ch=ch, type="risk.changed", data=[1, 2])
        s.error("publish", "bad_request", ch=ch, type="risk.changed", data="text")
        s.error("publish", "bad_request", ch=ch, type="", data={})
        s.error("publish", "bad_request", ch=ch, data={})
        s.error("publish", "bad_request", ch=ch, type=7, data={})
        s.error("publish", "bad_request", ch="nope", type="risk.changed", data={})
        s.error("publish", "bad_request", type="risk.changed", data={})
        # Nothing was published by the refused requests.
        assert s.ok("publish", ch=ch, type="risk.changed", data=risk("a", 1))["seq"] == 1


def test_unsubscribe_stops_delivery(hub):
    ch = f"exam:{uid('e')}:proctor"
    with hub.client("proctor", "p1") as stays, hub.client("proctor", "p2") as leaves, \
            hub.client("service", "s1") as pub:
        stays.ok("subscribe", ch=ch)
        leaves.ok("subscribe", ch=ch)
        pub.ok("publish", ch=ch, type="risk.changed", data=risk("a1", 1))
        assert stays.event()["seq"] == 1 and leaves.event()["seq"] == 1
        assert leaves.ok("unsubscribe", ch=ch) == {}
        pub.ok("publish", ch=ch, type="risk.changed", data=risk("a1", 2))
        assert stays.event()["seq"] == 2
        leaves.assert_no_event()
        # Unsubscribing again (or from a channel never subscribed) is harmless.
        assert leaves.ok("unsubscribe", ch=ch) == {}
        assert leaves.ok("unsubscribe", ch=f"exam:{uid('never')}:proctor") == {}
        leaves.error("unsubscribe", "bad_request", ch="bogus")
        leaves.error("unsubscribe", "bad_request")
        # Subscribing again resumes delivery from the current seq.
        assert leaves.ok("subscribe", ch=ch)["seq"] == 2
        pub.ok("publish", ch=ch, type="risk.changed", data=risk("a1", 3))
        assert leaves.event()["seq"] == 3 and stays.event()["seq"] == 3


def test_subscribing_twice_is_harmless(hub):
    ch = f"exam:{uid('e')}:proctor"
    with hub.client("proctor", "p1") as p, hub.client("service", "s1") as pub:
        a = p.ok("subscribe", ch=ch)
        b = p.ok("subscribe", ch=ch)
        assert a["epoch"] == b["epoch"]
        pub.ok("publish", ch=ch, type="risk.changed", data=risk("a1", 1))
        assert p.event()["seq"] == 1
        p.assert_no_event()  # delivered once


def test_disconnected_subscriber_does_not_break_delivery(hub):
    ch = f"exam:{uid('e')}:proctor"
    gone = hub.client("proctor", "p-gone")
    gone.ok("subscribe", ch=ch)
    gone.close()
    with hub.client("proctor", "p1") as p, hub.client("service", "s1") as pub:
        p.ok("subscribe", ch=ch)
        pub.ok("publish", ch=ch, type="risk.changed", data=risk("a1", 1))
        assert p.event()["seq"] == 1


def test_tenants_do_not_see_each_others_events(hub):
    exam = uid("e")
    ch = f"exam:{exam}:proctor"
    with hub.client("proctor", "p1", "t1", label="t1 proctor") as p1, \
            hub.client("proctor", "p1", "t2", label="t2 proctor") as p2, \
            hub.client("service", "s", "t1", label="t1 service") as s1, \
            hub.client("service", "s", "t2", label="t2 service") as s2:
        e1 = p1.ok("subscribe", ch=ch)
        e2 = p2.ok("subscribe", ch=ch)
        assert e1["epoch"] != e2["epoch"]  # two channels: keys are scoped per tenant
        assert s1.ok("publish", ch=ch, type="risk.changed", data=risk("t1-a", 11))["seq"] == 1
        assert s1.ok("publish", ch=ch, type="risk.changed", data=risk("t1-a", 12))["seq"] == 2
        assert s2.ok("publish", ch=ch, type="risk.changed", data=risk("t2-a", 21))["seq"] == 1
        got1 = p1.events_n(2)
        got2 = p2.event()
        assert [e["data"]["attemptId"] for e in got1] == ["t1-a", "t1-a"]
        assert got2["data"] == risk("t2-a", 21) and got2["seq"] == 1
        p1.assert_no_event()
        p2.assert_no_event()


# ----------------------------------------------------------------------------------------------- permissions


def test_candidate_may_not_watch_a_proctor_channel(hub):
    with hub.client("candidate", "c1") as c:
        c.error("subscribe", "forbidden", ch=f"exam:{uid('e')}:proctor")
        c.ping()


def test_exams_claim_limits_proctor_channels(hub):
    e1, e2 = uid("e"), uid("e")
    with hub.client("proctor", "p1", exams=[e1]) as p:
        p.ok("subscribe", ch=f"exam:{e1}:proctor")
        p.error("subscribe", "forbidden", ch=f"exam:{e2}:proctor")
    with hub.client("admin", "a1", exams=[e1]) as a:
        a.error("subscribe", "forbidden", ch=f"exam:{e2}:proctor")


def test_attempt_channel_permissions(hub):
    exam, other_exam = uid("e"), uid("e")
    own, someone_elses, other_tenant, other_exam_attempt = uid("a"), uid("a"), uid("a"), uid("a")
    hub.insert_attempt(own, "t1", exam, "c1")
    hub.insert_attempt(someone_elses, "t1", exam, "c2")
    hub.insert_attempt(other_tenant, "t2", exam, "c1")
    hub.insert_attempt(other_exam_attempt, "t1", other_exam, "c3")
    with hub.client("candidate", "c1", "t1") as c1:
        data = c1.ok("subscribe", ch=f"attempt:{own}")
        assert data["seq"] == 0 and data["recovered"] is False
        c1.error("subscribe", "forbidden", ch=f"attempt:{someone_elses}")
        c1.error("subscribe", "forbidden", ch=f"attempt:{other_tenant}")  # same sub, other tenant
        c1.error("subscribe", "not_found", ch=f"attempt:{uid('missing')}")
        c1.ping()
    with hub.client("candidate", "c1", "t2") as c1_t2:
        c1_t2.ok("subscribe", ch=f"attempt:{other_tenant}")
        c1_t2.error("subscribe", "forbidden", ch=f"attempt:{own}")
    with hub.client("candidate", "c1", "t1", exams=[other_exam]) as limited:
        limited.error("subscribe", "forbidden", ch=f"attempt:{own}")  # token not valid for the attempt's exam
    with hub.client("proctor", "p1", "t1") as p:
        p.ok("subscribe", ch=f"attempt:{own}")
        p.ok("subscribe", ch=f"attempt:{someone_elses}")
        p.error("subscribe", "forbidden", ch=f"attempt:{other_tenant}")
    with hub.client("proctor", "p1", "t1", exams=[exam]) as p:
        p.ok("subscribe", ch=f"attempt:{own}")
        p.error("subscribe", "forbidden", ch=f"attempt:{other_exam_attempt}")
    with hub.client("proctor", "p1", "t2") as p:
        p.error("subscribe", "forbidden", ch=f"attempt:{own}")


def test_attempt_events_reach_the_candidate_and_its_proctor(hub):
    attempt = uid("a")
    hub.insert_attempt(attempt, "t1", uid("e"), "c1")
    ch = f"attempt:{attempt}"
    with hub.client("candidate", "c1") as cand, hub.client("proctor", "p1") as proc, \
            hub.client("service", "s1") as svc:
        cand.ok("subscribe", ch=ch)
        proc.ok("subscribe", ch=ch)
        svc.ok("publish", ch=ch, type="attempt.warned", data={"message": "eyes on your screen"})
        for c in (cand, proc):
            e = c.event()
            assert (e["ch"], e["seq"], e["type"], e["data"]) == (ch, 1, "attempt.warned",
                                                                 {"message": "eyes on your screen"})
            c.assert_no_event()


def test_chat_channel_permissions(hub):
    mine, theirs, foreign = uid("conv"), uid("conv"), uid("conv")
    hub.insert_conversation(mine, "t1", "c1")
    hub.insert_conversation(theirs, "t1", "c2")
    hub.insert_conversation(foreign, "t2", "c1")
    with hub.client("candidate", "c1") as c:
        c.ok("subscribe", ch=f"chat:{mine}")
        c.error("subscribe", "forbidden", ch=f"chat:{theirs}")
        c.error("subscribe", "forbidden", ch=f"chat:{foreign}")
        c.error("subscribe", "not_found", ch=f"chat:{uid('nope')}")
    with hub.client("proctor", "p1") as p:
        p.error("subscribe", "forbidden", ch=f"chat:{mine}")  # only the owner


@pytest.mark.parametrize("ch", [
    "lobby", "exam:e1", "exam:e1:candidates", "exam::proctor", "attempt:", "attempt:a b", "attempt:a/b",
    "chat:x:y", "ATTEMPT:a1", "attempt:" + "a" * 129, "exam:é:proctor", "",
])
def test_bad_channel_name_is_bad_request(hub, ch):
    with hub.client("admin", "a1") as a:
        a.error("subscribe", "bad_request", ch=ch)
        a.ping()


@pytest.mark.parametrize("fields", [{}, {"ch": 5}, {"ch": None}, {"ch": ["exam:e1:proctor"]}])
def test_subscribe_without_a_string_channel_is_bad_request(hub, fields):
    with hub.client("admin", "a1") as a:
        a.error("subscribe", "bad_request", **fields)
        a.ping()


def test_identifier_of_128_characters_is_accepted(hub):
    with hub.client("admin", "a1") as a:
        a.ok("subscribe", ch=f"exam:{'e' * 128}:proctor")


def test_publish_to_an_attempt_respects_the_exams_claim(hub):
    """PROTOCOL.md section 1: an admin acts only on exams of its `exams` claim when present (and ChannelPolicy:
    publish 'only on exams their token admits'). An attempt channel belongs to its attempt's exam."""
    exam, other_exam = uid("e"), uid("e")
    attempt = uid("a")
    hub.insert_attempt(attempt, "t1", other_exam, "c1")
    ch = f"attempt:{attempt}"
    with hub.client("candidate", "c1") as cand, hub.client("admin", "a-limited", exams=[exam]) as admin, \
            hub.client("service", "s-limited", exams=[exam]) as service:
        cand.ok("subscribe", ch=ch)
        for publisher in (admin, service):
            r = publisher.request("publish", ch=ch, type="attempt.terminated", data={"reason": "spoofed"})
            assert r["ok"] is False and r["error"]["code"] == "forbidden", (
                f"{publisher.label} limited to exam {exam} published on an attempt of exam {other_exam}: {r}")
        cand.assert_no_event()


def test_publish_to_an_attempt_of_another_tenant_goes_nowhere(hub):
    attempt = uid("a")
    hub.insert_attempt(attempt, "t1", uid("e"), "c1")
    with hub.client("candidate", "c1") as cand, hub.client("service", "s1", "t2") as foreign:
        cand.ok("subscribe", ch=f"attempt:{attempt}")
        # Refused or accepted into the publisher's own tenant: either way, never delivered across tenants.
        foreign.request("publish", ch=f"attempt:{attempt}", type="attempt.warned", data={"message": "x"})
        cand.assert_no_event()


def test_concurrent_publishers_yield_one_gapless_seq_per_channel(hub):
    """Two publishers on different sockets (EXAMHUB_THREADS=2, so possibly different event loops) pipeline 60
    publishes each: every subscriber sees seq 1..120 in order, no gap, no duplicate, and each publisher's own
    events in the order it sent them."""
    ch = f"exam:{uid('e')}:proctor"
    subs = [hub.client("proctor", f"p{i}", label=f"sub{i}") for i in range(3)]
    raws = []
    try:
        for s in subs:
            s.ok("subscribe", ch=ch)
        for name in ("x", "y"):
            raw = hub.raw(headers={"Authorization": f"Bearer {hub.token('service', f's-{name}')}"})
            raws.append(raw)
        for n, raw in enumerate(raws):
            raw.send_texts(*[{"op": "publish", "id": i + 1, "ch": ch, "type": "risk.changed",
                              "data": {"attemptId": f"from-{n}", "risk": i}} for i in range(60)])
        seqs_by_publisher = []
        for raw in raws:
            replies = [raw.recv_json() for _ in range(60)]
            assert all(r["ok"] for r in replies), replies
            seqs_by_publisher.append([r["data"]["seq"] for r in replies])
        assert sorted(seqs_by_publisher[0] + seqs_by_publisher[1]) == list(range(1, 121))
        for s in subs:
            events = s.events_n(120)
            assert [e["seq"] for e in events] == list(range(1, 121))
            for n in range(2):
                mine = [e["data"]["risk"] for e in events if e["data"]["attemptId"] == f"from-{n}"]
                assert mine == list(range(60))
                assert [e["seq"] for e in events if e["data"]["attemptId"] == f"from-{n}"] == seqs_by_publisher[n]
            s.assert_no_event()
    finally:
        for c in subs:
            c.close()
        for raw in raws:
            raw.close()
