"""Several nodes on one PostgreSQL (issue 6, "several nodes"): two or three real `examhub serve` processes share a
real PostgreSQL 15 and the same JWT secret. A proctor on node A sees a candidate on node B (joined, flags, state,
left), a tab on A sees the saves made on B, a channel's `seq` is the same on every node, a client that reconnects to
another node recovers exactly what it missed, a node whose LISTEN connection is killed listens again and still
delivers what was published meanwhile, events over PostgreSQL's 8,000-byte NOTIFY limit cross nodes, and a node
killed with SIGKILL has its candidates announced left by the others.

Every frame is checked against Protocols/ by `Client`."""
from __future__ import annotations

import itertools
import re
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from examkit import create_exam, drain_events, events_of, join, save, save_ok, uid, wait_until
from hubclient import Hub
from pgserver import PG_BIN, PostgresServer

HEARTBEAT = "1"  # seconds: a killed node is given up after three


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Nodes:
    """`examhub serve` processes on one PostgreSQL database each test chooses. At teardown, what still runs gets
    SIGTERM and must exit 0 (a node killed by the test is left alone)."""

    def __init__(self, base: Path, pg: PostgresServer):
        self.base = base
        self.pg = pg
        self.hubs: list[Hub] = []
        self._n = itertools.count()

    def start(self, db: str, **env: str) -> Hub:
        hub = Hub(self.base / f"node{next(self._n)}",
                  env={"EXAMHUB_DATABASE_URL": db, "EXAMHUB_CLUSTER_HEARTBEAT_SEC": HEARTBEAT, **env})
        hub.db = db
        self.hubs.append(hub)
        return hub

    @staticmethod
    def kill(hub: Hub) -> None:
        hub.proc.kill()
        hub.proc.wait(timeout=10)

    def close(self) -> None:
        problems = []
        for hub in self.hubs:
            if hub.proc.poll() is None:
                rc = hub.stop()
                if rc != 0:
                    problems.append(f"node on port {hub.port} exited {rc} after SIGTERM:\n{hub.stderr_tail()}")
        assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture
def nodes(tmp_path, pg):
    n = Nodes(tmp_path, pg)
    yield n
    n.close()


@pytest.fixture
def pair(nodes, pg):
    """Nodes A and B on a fresh database."""
    db = pg.create_database()
    return nodes.start(db), nodes.start(db)


def psql(pg: PostgresServer, db: str, sql: str) -> str:
    name = db.rsplit("/", 1)[1]
    out = subprocess.run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d", name,
                          "-Atc", sql], check=True, capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def node_id(hub: Hub) -> str:
    m = re.search(r"examhub\.node=(n[0-9a-z]+)", hub.stderr_tail(200_000))
    assert m, f"no node id in the log: {hub.stderr_tail()}"
    return m.group(1)


def metric(hub: Hub, name: str) -> float:
    status, _, body = hub.http("GET", "/metrics")
    assert status == 200
    total = 0.0
    for line in body.decode().splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if m:
            total += float(m.group(2))
    return total


def proctor_events(p, exam_id: str, type_: str, n: int = 1, timeout: float = 5) -> list[dict]:
    return events_of(p, f"exam:{exam_id}:proctor", type_, n=n, timeout=timeout)


def telemetry(c, attempt_id: str, *events: dict) -> dict:
    return c.request("telemetry", attemptId=attempt_id, events=list(events))


def test_a_proctor_on_one_node_sees_a_candidate_on_the_other(pair):
    a, b = pair
    exam = create_exam(a)
    eid = exam["id"]
    sub = uid("cand")
    with a.client("proctor", uid("proc"), label="proctor@A") as p:
        p.ok("proctor.watch", examId=eid)
        with b.client("candidate", sub, label="candidate@B") as c:
            aid = join(c, eid)["attemptId"]
            joined = proctor_events(p, eid, "candidate.joined")[0]
            assert joined["data"]["attemptId"] == aid and joined["data"]["candidate"] == sub

            # A second tab on A: still one candidate, joined once.
            with a.client("candidate", sub, label="tab@A") as tab:
                join(tab, eid)
                with a.client("proctor", uid("proc"), label="late proctor@A") as late:
                    roster = late.ok("proctor.watch", examId=eid)["roster"]
                    assert [(r["attemptId"], r["connected"]) for r in roster] == [(aid, True)]
            # The tab on A closed, the socket on B remains: no candidate.left.

            # Telemetry on B raises a flag at the proctor on A.
            r = telemetry(c, aid, {"kind": "face.count", "at": now_iso(), "data": {"n": 2}})
            assert r["ok"] is True, r
            flag = proctor_events(p, eid, "flag.raised")[0]["data"]
            assert (flag["attemptId"], flag["code"], flag["severity"]) == (aid, "multiple_faces", "critical")

            # A proctor action on A reaches the candidate on B, and candidate.state the proctor.
            p.ok("proctor.action", attemptId=aid, action="pause", message="Wait, please")
            assert events_of(c, f"attempt:{aid}", "attempt.paused")
            assert proctor_events(p, eid, "candidate.state")[0]["data"]["state"] == "paused"
            p.ok("proctor.action", attemptId=aid, action="terminate", message="Ended")
            assert events_of(c, f"attempt:{aid}", "attempt.terminated")[0]["data"]["reason"] == "Ended"
            assert proctor_events(p, eid, "candidate.state")[0]["data"]["state"] == "terminated"
            # Node B learnt the new state from A: telemetry for the closed attempt is refused there too.
            codes = []

            def refused() -> bool:
                r = telemetry(c, aid, {"kind": "focus.lost", "at": now_iso()})
                codes.append(r.get("error", {}).get("code"))
                return r["ok"] is False and r["error"]["code"] == "attempt_closed"
            wait_until(refused, 5, interval=0.1, what=f"telemetry refused on B (got {codes})")
            drain_events(p)
        left = proctor_events(p, eid, "candidate.left")[0]["data"]
        assert left["attemptId"] == aid and left["candidate"] == sub and "lastSeen" in left
        p.assert_no_event()  # exactly one candidate.left, though two nodes had sockets


def test_a_tab_on_one_node_sees_answers_saved_on_the_other_with_the_same_seq(pair):
    a, b = pair
    exam = create_exam(a)
    sub = uid("cand")
    with b.client("candidate", sub, label="writer@B") as writer, a.client("candidate", sub, label="tab@A") as tab, \
            b.client("candidate", sub, label="tab@B") as tab_b:
        aid = join(writer, exam["id"])["attemptId"]
        join(tab, exam["id"])
        join(tab_b, exam["id"])
        ch = f"attempt:{aid}"
        sub_a = tab.ok("subscribe", ch=ch)
        sub_b = tab_b.ok("subscribe", ch=ch)
        assert (sub_a["epoch"], sub_a["seq"]) == (sub_b["epoch"], sub_b["seq"])
        for i in range(5):
            save_ok(writer, aid, "q-text", f"draft {i}")
        on_a = events_of(tab, ch, "answer.saved", n=5)
        on_b = events_of(tab_b, ch, "answer.saved", n=5)
        assert [e["data"]["value"] for e in on_a] == [f"draft {i}" for i in range(5)]
        assert [e["data"]["version"] for e in on_a] == [1, 2, 3, 4, 5]
        assert [e["seq"] for e in on_a] == list(range(sub_a["seq"] + 1, sub_a["seq"] + 6))
        assert [(e["seq"], e["ts"], e["data"]) for e in on_a] == [(e["seq"], e["ts"], e["data"]) for e in on_b]

        # A save on A reaches the tab on B.
        save_ok(tab, aid, "q-number", 42)
        e = events_of(tab_b, ch, "answer.saved")[0]
        assert e["data"]["qid"] == "q-number" and e["data"]["value"] == 42 and e["seq"] == sub_a["seq"] + 6


def test_publish_on_one_node_is_numbered_once_for_the_whole_cluster(pair):
    a, b = pair
    exam = create_exam(a)
    ch = f"exam:{exam['id']}:proctor"
    with a.client("proctor", uid("proc"), label="proctor@A") as pa, b.client("proctor", uid("proc"), label="proctor@B") as pb, \
            a.client("service", "svc-a", label="service@A") as sa, b.client("service", "svc-b", label="service@B") as sb:
        pa.ok("proctor.watch", examId=exam["id"])
        pb.ok("proctor.watch", examId=exam["id"])
        replies = []
        for i in range(6):
            publisher = sa if i % 2 == 0 else sb
            replies.append(publisher.ok("publish", ch=ch, type="risk.changed", data={"attemptId": f"a{i}", "risk": i}))
        seqs = [r["seq"] for r in replies]
        assert seqs == list(range(seqs[0], seqs[0] + 6)) and len({r["epoch"] for r in replies}) == 1
        for p in (pa, pb):
            got = events_of(p, ch, "risk.changed", n=6)
            assert [(e["seq"], e["data"]["attemptId"]) for e in got] == [(s, f"a{i}") for i, s in enumerate(seqs)]


def test_reconnecting_to_another_node_recovers_exactly_the_missed_events(pair, nodes):
    a, b = pair
    exam = create_exam(a)
    sub = uid("cand")
    with b.client("candidate", sub, label="writer@B") as writer:
        aid = join(writer, exam["id"])["attemptId"]
        ch = f"attempt:{aid}"
        save_ok(writer, aid, "q-text", "before")
        with a.client("candidate", sub, label="tab@A") as tab:
            first = tab.ok("subscribe", ch=ch)
            save_ok(writer, aid, "q-text", "seen")
            seen = events_of(tab, ch, "answer.saved")[0]
            assert seen["seq"] == first["seq"] + 1
        since = {"epoch": first["epoch"], "seq": seen["seq"]}
        for i in range(3):
            save_ok(writer, aid, "q-text", f"missed {i}")

        # Node C starts now: it has never seen the channel, so it reads the shared log.
        c = nodes.start(a.db)
        for node, label in ((b, "B"), (a, "A"), (c, "C")):
            with node.client("candidate", sub, label=f"again@{label}") as again:
                r = again.ok("subscribe", ch=ch, since=since)
                assert r["recovered"] is True and r["epoch"] == since["epoch"] and r["seq"] == since["seq"] + 3, (label, r)
                missed = events_of(again, ch, "answer.saved", n=3)
                assert [e["seq"] for e in missed] == [since["seq"] + 1, since["seq"] + 2, since["seq"] + 3], label
                assert [e["data"]["value"] for e in missed] == ["missed 0", "missed 1", "missed 2"], label
                again.assert_no_event()
                # An epoch the channel never had: nothing to recover, the client re-reads state.
                r = again.ok("subscribe", ch=ch, since={"epoch": "0000000000000000", "seq": 1})
                assert r["recovered"] is False and r["epoch"] == since["epoch"] and r["seq"] == since["seq"] + 3
                again.assert_no_event()

        # Node C now follows the channel: later saves reach it live.
        with c.client("candidate", sub, label="tab@C") as tab_c:
            tab_c.ok("subscribe", ch=ch)
            save_ok(writer, aid, "q-text", "live")
            e = events_of(tab_c, ch, "answer.saved")[0]
            assert e["seq"] == since["seq"] + 4 and e["data"]["value"] == "live"


def test_a_node_whose_listen_connection_is_killed_listens_again_and_loses_nothing(pair, pg):
    a, b = pair
    exam = create_exam(a)
    sub = uid("cand")
    node_a = node_id(a)
    with b.client("candidate", sub, label="writer@B") as writer, a.client("candidate", sub, label="tab@A") as tab:
        aid = join(writer, exam["id"])["attemptId"]
        join(tab, exam["id"])
        ch = f"attempt:{aid}"
        drain_events(tab)
        versions: list[int] = []
        errors: list[dict] = []
        stop = threading.Event()

        def keep_saving() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                r = save(writer, aid, "q-text", f"v{n}", timeout=10)
                (versions.append(r["data"]["version"]) if r["ok"] else errors.append(r))

        saver = threading.Thread(target=keep_saving, daemon=True)
        saver.start()
        try:
            wait_until(lambda: len(versions) >= 20, 10, what="saves before the kill")
            reconnects = metric(a, "examhub_cluster_listen_reconnects_total")
            killed = psql(pg, a.db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                    f"WHERE application_name = 'examhub-listen {node_a}'")
            assert killed == "1", "node A's LISTEN connection not found"
            wait_until(lambda: metric(a, "examhub_cluster_listen_reconnects_total") > reconnects, 10, what="A noticing")
            wait_until(lambda: psql(pg, a.db, "SELECT count(*) FROM pg_stat_activity "
                                              f"WHERE application_name = 'examhub-listen {node_a}'") == "1",
                       10, interval=0.1, what="A listening again")
            before = len(versions)
            wait_until(lambda: len(versions) >= before + 20, 10, what="saves after the new LISTEN")
        finally:
            stop.set()
            saver.join(timeout=15)
        assert not errors, errors[:3]
        got = events_of(tab, ch, "answer.saved", n=len(versions), timeout=15)
        assert [e["data"]["version"] for e in got] == versions == list(range(1, len(versions) + 1))
        assert [e["seq"] for e in got] == list(range(got[0]["seq"], got[0]["seq"] + len(got)))
        tab.assert_no_event()
        # What was committed while A was not listening came from the log, not from notifications.
        assert metric(a, "examhub_cluster_events_recovered_total") >= 1


def test_events_over_the_notify_limit_cross_nodes(pair):
    a, b = pair
    exam = create_exam(a)
    sub = uid("cand")
    big = "x" * 30_000 + "é" * 2_000 + "\u0000 end"
    with b.client("candidate", sub, label="writer@B") as writer, a.client("candidate", sub, label="tab@A") as tab:
        aid = join(writer, exam["id"])["attemptId"]
        join(tab, exam["id"])
        ch = f"attempt:{aid}"
        save_ok(writer, aid, "q-text", "small")
        save_ok(writer, aid, "q-text", big)
        save_ok(writer, aid, "q-text", "small again")
        got = events_of(tab, ch, "answer.saved", n=3)
        assert [e["data"]["value"] for e in got] == ["small", big, "small again"]
        assert [e["seq"] for e in got] == [got[0]["seq"], got[0]["seq"] + 1, got[0]["seq"] + 2]
        # Recovery of a big event with `since`.
        with a.client("candidate", sub, label="again@A") as again:
            r = again.ok("subscribe", ch=ch, since={"epoch": tab.ok("subscribe", ch=ch)["epoch"], "seq": got[0]["seq"]})
            assert r["recovered"] is True
            assert [e["data"]["value"] for e in events_of(again, ch, "answer.saved", n=2)] == [big, "small again"]


def test_a_killed_node_s_candidates_are_announced_left_by_the_others(pair):
    a, b = pair
    exam = create_exam(a)
    sub = uid("cand")
    with a.client("proctor", uid("proc"), label="proctor@A") as p:
        p.ok("proctor.watch", examId=exam["id"])
        c = b.client("candidate", sub, label="candidate@B")
        aid = join(c, exam["id"])["attemptId"]
        assert proctor_events(p, exam["id"], "candidate.joined")[0]["data"]["attemptId"] == aid
        killed_at = time.monotonic()
        Nodes.kill(b)
        left = proctor_events(p, exam["id"], "candidate.left", timeout=15)[0]["data"]
        waited = time.monotonic() - killed_at
        assert left["attemptId"] == aid and left["candidate"] == sub
        assert waited < 4 * float(HEARTBEAT) + 3, waited
        roster = p.ok("proctor.watch", examId=exam["id"])["roster"]
        assert [(r["attemptId"], r["connected"]) for r in roster] == [(aid, False)]
        c.close()


def test_sqlite_refuses_cluster_mode(tmp_path):
    from hubclient import run_cli
    out = run_cli("serve", env={"EXAMHUB_DATABASE_URL": f"sqlite://{tmp_path}/x.db", "EXAMHUB_CLUSTER": "1",
                                "EXAMHUB_PORT": "0"}, cwd=tmp_path)
    assert out.returncode != 0 and "EXAMHUB_CLUSTER=1 needs a postgres://" in out.stderr, out.stderr
