"""Group commit (issue 3): saves from all connections share one transaction per window, bounded by count
(`EXAMHUB_COMMIT_MAX_BATCH`) and time (`EXAMHUB_COMMIT_WINDOW_MS`), and every ack still waits for its own
commit."""
from __future__ import annotations

import time

import pytest

from examkit import create_exam, db_answer, join, uid
from hubclient import run_cli


def test_saves_of_many_sockets_share_a_commit_window(start_hub):
    """With a 300 ms window, 20 sockets saving at once are all acked about one window later (not 20 windows),
    and no ack comes before the window has passed, i.e. before the commit."""
    hub = start_hub({"EXAMHUB_COMMIT_WINDOW_MS": "300"})
    exam = create_exam(hub)
    clients = [hub.client("candidate", uid("cand"), label=f"c{i}") for i in range(20)]
    try:
        attempts = [join(c, exam["id"])["attemptId"] for c in clients]
        started = time.monotonic()
        rids = []
        for c, aid in zip(clients, attempts):
            rid = c.next_id()
            c.send({"op": "answer.save", "id": rid, "attemptId": aid, "qid": "q-text", "value": c.label,
                    "opId": uid("op")})
            rids.append(rid)
        for c, aid, rid in zip(clients, attempts, rids):
            r = c.reply(rid, "answer.save", timeout=10)
            assert r["ok"] and r["data"]["version"] == 1, r
            assert db_answer(hub.db_path, aid, "q-text") == (c.label, 1)
        elapsed = time.monotonic() - started
        assert 0.29 <= elapsed < 2.5, f"20 concurrent saves took {elapsed:.2f}s with a 300 ms window"
    finally:
        for c in clients:
            c.close()


def test_batch_of_one_still_orders_and_versions_correctly(start_hub):
    hub = start_hub({"EXAMHUB_COMMIT_MAX_BATCH": "1"})
    exam = create_exam(hub)
    with hub.client("candidate", uid("cand")) as c:
        aid = join(c, exam["id"])["attemptId"]
        rids = []
        for i in range(10):
            rid = c.next_id()
            c.send({"op": "answer.save", "id": rid, "attemptId": aid, "qid": "q-number", "value": i,
                    "opId": uid("op")})
            rids.append(rid)
        assert [c.reply(rid, "answer.save")["data"]["version"] for rid in rids] == list(range(1, 11))
    assert db_answer(hub.db_path, aid, "q-number") == (9, 10)


@pytest.mark.parametrize("env", [{"EXAMHUB_COMMIT_MAX_BATCH": "0"}, {"EXAMHUB_COMMIT_WINDOW_MS": "-1"},
                                 {"EXAMHUB_COMMIT_WINDOW_MS": "100000"}, {"EXAMHUB_COMMIT_MAX_BATCH": "many"}],
                         ids=["batch 0", "window negative", "window too long", "batch not a number"])
def test_serve_refuses_bad_group_commit_settings(tmp_path, env):
    out = run_cli("serve", env={"EXAMHUB_PORT": "0", "EXAMHUB_DATABASE_URL": f"sqlite://{tmp_path}/db.sqlite",
                                **env}, cwd=tmp_path, timeout=20)
    assert out.returncode > 0, (out.returncode, out.stdout, out.stderr)
    assert "listening" not in out.stdout
    assert next(iter(env)) in out.stderr, out.stderr
