"""Events out (issue 6, PROTOCOL.md guarantee 5.7): the outbox workers against real local receivers.

The notification worker posts signed webhooks and sends mail through a SendGrid v3-style API, retries failures
with backoff (same event id each time), parks events after too many failures (listed and replayed with
`examhub worker`); the analytics worker keeps per-exam roll-ups behind `GET /v1/exams/{id}/report`. With
PostgreSQL, several `examhub worker` processes share the outbox, and one killed with SIGKILL mid-batch loses nothing.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import contract
from examkit import admin_token, create_exam, http_json, join, save_ok, uid, wait_until
from hubclient import binary_path, clean_env, run_cli
from pgserver import PostgresServer
from receivers import Receiver, verify_signature

SECRET = "whsec_test_0123456789abcdef"
MAIL_KEY = "SG.test-key-not-a-secret"
FAST = {"EXAMHUB_OUTBOX_POLL_MS": "50", "EXAMHUB_OUTBOX_RETRY_BASE_MS": "100"}


def notifications_file(tmp: Path, hook_url: str, events: list[str] | None = None, email: bool = False) -> Path:
    hook_events = f"\n        events: [{', '.join(events)}]" if events else ""
    receipt = """
  "*":
    email:
      - event: attempt.submitted
        to: "{{candidate}}"
        subject: "We have your answers to {{examTitle}}"
        text: "Submitted at {{at}} (reason {{reason}}). Reference {{eventId}}."
"""
    text = f"""
tenants:{receipt if email else ""}
  t1:
    webhooks:
      - url: {hook_url}/hooks/examhub
        secret_env: T1_WEBHOOK_SECRET{hook_events}
"""
    path = tmp / "notifications.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(**kw) -> Receiver:
        r = Receiver(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def json_leaves(value):
    """Every scalar in a decoded JSON value (dict values and list items, recursively)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from json_leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from json_leaves(v)
    else:
        yield value


def hub_env(tmp: Path, hook: Receiver, mail: Receiver | None = None, **extra: str) -> dict[str, str]:
    env = {
        **FAST,
        "EXAMHUB_NOTIFICATIONS": str(notifications_file(tmp, hook.url, extra.pop("hook_events", None),
                                                        email=mail is not None)),
        "T1_WEBHOOK_SECRET": SECRET,
    }
    if mail is not None:
        env.update({"EXAMHUB_MAIL_URL": mail.url, "EXAMHUB_MAIL_API_KEY": MAIL_KEY,
                    "EXAMHUB_MAIL_FROM": "exams@school.example"})
    env.update(extra)
    return env


def test_every_state_change_reaches_a_signed_webhook_and_the_receipt_is_mailed(start_hub, receivers, tmp_path):
    hook = receivers()
    mail = receivers(status=202, expected_auth=f"Bearer {MAIL_KEY}")
    hub = start_hub(hub_env(tmp_path, hook, mail))
    exam = create_exam(hub)
    candidate = f"{uid('alice')}@example.org"
    with hub.client("candidate", candidate) as c:
        aid = join(c, exam["id"])["attemptId"]
        save_ok(c, aid, "q-text", "the secret answer text")
        save_ok(c, aid, "q-number", 42)
        c.ok("attempt.submit", attemptId=aid, opId=uid("sub"))

    wait_until(lambda: {"attempt.joined", "attempt.submitted"} <= {r.json["type"] for r in hook.ok()}, 10,
               what="webhooks for the join and the submit")
    wait_until(lambda: len(mail.ok()) == 1, 10, what="the receipt mail")
    got = hook.ok()
    for r in got:
        assert r.path == "/hooks/examhub"
        assert verify_signature(r, SECRET), r.headers
        assert not verify_signature(r, SECRET + "x")
        assert "traceparent" not in r.headers, "no trace context while tracing is off"
        assert r.headers["content-type"] == "application/json"
        body = r.json
        contract.validate("schemas/outbox/webhook.json", body)
        contract.validate(f"schemas/outbox/{body['type']}.json", body["data"])
        assert body["id"] == r.event_id and body["tenant"] == "t1" and body["version"] == 1
        assert b"secret answer" not in r.body
        # The number answer (42) must not travel either; ids may hold the digits "42", so look at values.
        assert 42 not in json_leaves(body["data"]), body["data"]
    types = Counter(r.json["type"] for r in got)
    assert types["attempt.joined"] == 1 and types["attempt.submitted"] == 1 and types["answers.saved"] >= 1
    assert sum(r.json["data"]["count"] for r in got if r.json["type"] == "answers.saved") == 2
    assert len({r.event_id for r in got}) == len(got), "each event once when the receiver says 200"

    [m] = mail.ok()
    assert m.path == "/v3/mail/send"
    sent = m.json
    assert sent["personalizations"] == [{"to": [{"email": candidate}]}]
    assert sent["from"] == {"email": "exams@school.example"}
    assert sent["subject"] == "We have your answers to Integration exam"
    submitted = next(r.json for r in got if r.json["type"] == "attempt.submitted")
    assert sent["custom_args"]["examhub_event_id"] == submitted["id"]
    assert f"Reference {submitted['id']}" in sent["content"][0]["value"] and "reason candidate" in sent["content"][0]["value"]
    # The API key and the webhook secret stay out of the logs.
    log = (hub.workdir / "stderr.log").read_text()
    assert MAIL_KEY not in log and SECRET not in log


def test_a_receiver_that_fails_three_times_gets_the_event_again_with_the_same_id(start_hub, receivers, tmp_path):
    hook = receivers(fail_first=3)
    hub = start_hub(hub_env(tmp_path, hook, hook_events=["attempt.joined"]))
    exam = create_exam(hub)
    with hub.client("candidate", uid("bob")) as c:
        join(c, exam["id"])
    wait_until(lambda: len(hook.ok()) == 1, 15, what="the fourth try to succeed")
    time.sleep(0.5)
    tries = hook.snapshot()
    assert [r.status for r in tries] == [500, 500, 500, 200]
    assert len({r.event_id for r in tries}) == 1
    assert len({r.body for r in tries}) == 1, "the same body each time"
    gaps = [b.at - a.at for a, b in zip(tries, tries[1:])]
    assert all(g >= 0.04 for g in gaps), f"retries wait (backoff): {gaps}"
    assert all(verify_signature(r, SECRET) for r in tries)


def test_dead_letters_are_listed_and_replayed_with_examhub_worker(start_hub, receivers, tmp_path):
    hook = receivers(status=503)
    hub = start_hub(hub_env(tmp_path, hook, hook_events=["attempt.joined"], EXAMHUB_OUTBOX_MAX_ATTEMPTS="2"))
    exam = create_exam(hub)
    with hub.client("candidate", uid("carol")) as c:
        join(c, exam["id"])
    env = {"EXAMHUB_DATABASE_URL": f"sqlite://{hub.db_path}"}

    def dead() -> list[dict]:
        r = run_cli("worker", "notifications", "--dead-letters", "--json", env=env)
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    wait_until(lambda: len(dead()) == 1, 15, what="the event parked as dead")
    [letter] = dead()
    assert letter["type"] == "attempt.joined" and letter["attempts"] == 2 and "HTTP 503" in letter["error"]
    assert len(hook.snapshot()) == 2
    human = run_cli("worker", "notifications", "--dead-letters", env=env)
    assert "1 dead event(s) for notifications" in human.stdout and letter["id"] in human.stdout
    # Analytics has its own progress: the same event is counted there, not dead.
    assert run_cli("worker", "analytics", "--dead-letters", "--json", env=env).stdout.strip() == ""

    hook.status = 200
    r = run_cli("worker", "notifications", "--replay", letter["id"], env=env)
    assert r.returncode == 0 and "1 event(s) pending again" in r.stdout, r.stderr
    wait_until(lambda: len(hook.ok()) == 1, 10, what="the replayed event delivered")
    assert hook.ok()[0].event_id == letter["id"]
    assert dead() == []


def test_the_report_counts_attempts_saves_flags_interventions_and_assistant_turns(start_hub, tmp_path):
    hub = start_hub(FAST)
    exam = create_exam(hub)
    eid = exam["id"]
    with hub.client("proctor", uid("proc"), label="proctor") as p, \
            hub.client("candidate", uid("c1")) as c1, hub.client("candidate", uid("c2")) as c2, \
            hub.client("candidate", uid("c3")) as c3:
        a1 = join(c1, eid)["attemptId"]
        a2 = join(c2, eid)["attemptId"]
        join(c3, eid)
        for i in range(3):
            save_ok(c1, a1, "q-text", f"draft {i}")
        save_ok(c2, a2, "q-number", 7)
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        assert c2.request("telemetry", attemptId=a2, events=[{"kind": "face.count", "at": now, "data": {"n": 2}}])["ok"]
        c1.ok("attempt.submit", attemptId=a1, opId=uid("sub"))
        p.ok("proctor.action", attemptId=a2, action="warn", message="eyes on your screen")
        p.ok("proctor.action", attemptId=a2, action="terminate", reason="second person")
        c3.ok("chat.send", conversationId=uid("conv"), text="how much time do I have left?", clientMsgId="m1",
              attemptId=join(c3, eid)["attemptId"])

    token = admin_token(hub)

    def report() -> dict:
        status, doc = http_json(hub, "GET", f"/v1/exams/{eid}/report", token)
        assert status == 200, doc
        contract.validate("schemas/http/report.json", doc)
        return doc

    wait_until(lambda: report()["assistant"]["turns"] == 1 and report()["interventions"].get("terminate") == 1, 10,
               what="the roll-ups to catch up")
    doc = report()
    assert doc["examId"] == eid
    assert doc["attempts"] == {"total": 3, "in_progress": 1, "submitted": 1, "terminated": 1,
                               "submitted_by_candidate": 1, "timed_out": 0}
    assert doc["saves"] == 4
    assert doc["timeToSubmit"]["count"] == 1 and doc["timeToSubmit"]["p50Sec"] == 60
    assert doc["flags"] == {"multiple_faces": 1}
    assert doc["flagsBySeverity"] == {"critical": 1}
    assert doc["interventions"] == {"warn": 1, "terminate": 1}
    assert doc["assistant"]["bySource"] == {"intent": 1}
    assert doc["assistant"]["byIntent"][0]["intent"] == "time_left"
    assert doc["analyticsLag"]["pendingEvents"] >= 0

    # Admins only, of the exam's tenant.
    assert http_json(hub, "GET", f"/v1/exams/{eid}/report", hub.token("proctor", "p9", "t1"))[0] == 403
    assert http_json(hub, "GET", f"/v1/exams/{eid}/report", admin_token(hub, tenant="t2"))[0] == 404
    assert http_json(hub, "GET", "/v1/exams/nope/report", token)[0] == 404

    # The roll-ups are exported as metrics too.
    metrics = hub.http("GET", "/metrics")[2].decode()
    assert 'examhub_analytics_total{metric="attempts",key="started"} 3' in metrics
    assert 'examhub_outbox_delivered_total{worker="analytics",result="ok"}' in metrics


def test_a_bad_notifications_file_stops_the_start_with_every_problem_and_its_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("""tenants:
  t1:
    webhooks:
      - url: ftp://nowhere
        secret: short
    email:
      - event: attempt.teleported
        to: x@y.z
        subject: s
        text: t
      - event: flag.raised
        to: "{{candidate}}"
        subject: "{{nonsense}}"
        text: ok
""")
    r = run_cli("serve", env={"EXAMHUB_NOTIFICATIONS": str(path), "EXAMHUB_PORT": "0",
                              "EXAMHUB_DATABASE_URL": f"sqlite://{tmp_path}/db.sqlite"}, timeout=30)
    assert r.returncode != 0
    err = r.stderr
    assert f"{path}:4: a webhook needs 'url'" in err
    assert f"{path}:7: an email rule needs 'event'" in err
    assert f"{path}:13: subject: {{{{nonsense}}}} is not a field of flag.raised" in err
    # Email rules without a mail API are refused too.
    ok = tmp_path / "ok.yaml"
    ok.write_text('tenants:\n  "*":\n    email:\n      - event: flag.raised\n        to: a@b.c\n        subject: s\n        text: t\n')
    r = run_cli("serve", env={"EXAMHUB_NOTIFICATIONS": str(ok), "EXAMHUB_PORT": "0",
                              "EXAMHUB_DATABASE_URL": f"sqlite://{tmp_path}/db2.sqlite"}, timeout=30)
    assert r.returncode != 0 and "set EXAMHUB_MAIL_URL" in r.stderr


# ------------------------------------------------------------------------------ several workers on PostgreSQL


@pytest.fixture
def pg():
    server = PostgresServer()
    yield server
    server.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_worker(kind: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(binary_path()), "worker", kind], env=clean_env(**env),
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"))


def test_workers_share_the_outbox_and_one_killed_mid_batch_loses_nothing(pg, start_hub, receivers, tmp_path):
    url = pg.create_database()
    hook = receivers(delay=0.02)
    env = hub_env(tmp_path, hook, EXAMHUB_DATABASE_URL=url, EXAMHUB_WORKERS="none",
                  EXAMHUB_OUTBOX_LEASE_SEC="2", EXAMHUB_WEBHOOK_TIMEOUT_SEC="1", EXAMHUB_OUTBOX_BATCH="20")
    hub = start_hub(env)
    exam = create_exam(hub)
    n = 40
    for i in range(n):
        with hub.client("candidate", f"w{i}") as c:
            aid = join(c, exam["id"])["attemptId"]
            save_ok(c, aid, "q-text", f"answer {i}")
    # Nothing is delivered while no worker runs.
    time.sleep(0.3)
    assert hook.snapshot() == []

    worker_env = {k: v for k, v in env.items() if k.startswith("EXAMHUB_") or k == "T1_WEBHOOK_SECRET"}
    metrics_port = free_port()
    workers = [start_worker("notifications", {**worker_env, **({"EXAMHUB_WORKER_METRICS_PORT": str(metrics_port)}
                                                                if i == 1 else {})}, tmp_path / f"w{i}.log")
               for i in range(2)]
    analytics = [start_worker("analytics", worker_env, tmp_path / f"a{i}.log") for i in range(2)]
    try:
        wait_until(lambda: len(hook.snapshot()) >= 10, 15, what="deliveries to start")
        workers[0].send_signal(signal.SIGKILL)
        analytics[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        analytics[0].wait()
        expected = 2 * n  # one attempt.joined and one answers.saved per candidate
        wait_until(lambda: len({r.event_id for r in hook.ok()}) == expected, 30,
                   what="every event delivered after the kill")
        ids = Counter(r.event_id for r in hook.ok())
        duplicates = {k: v for k, v in ids.items() if v > 1}
        # At least once: only what the killed worker held can come twice, at most one batch.
        assert len(duplicates) <= 20, duplicates
        token = admin_token(hub)
        wait_until(lambda: http_json(hub, "GET", f"/v1/exams/{exam['id']}/report", token)[1]["saves"] == n, 15,
                   what="the roll-ups")
        doc = http_json(hub, "GET", f"/v1/exams/{exam['id']}/report", token)[1]
        # Exactly once in the roll-ups, whatever the kill interrupted.
        assert doc["attempts"]["total"] == n and doc["saves"] == n
        # A worker running alone serves its own metrics.
        def scrape() -> str:
            conn = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=5)
            conn.request("GET", "/metrics")
            return conn.getresponse().read().decode()

        wait_until(lambda: 'examhub_outbox_pending{worker="notifications"} 0' in scrape(), 10,
                   what="the backlog gauge to reach 0")
        text = scrape()
        delivered = [line for line in text.splitlines()
                     if line.startswith('examhub_outbox_delivered_total{worker="notifications",result="ok"}')]
        assert delivered and float(delivered[0].split()[-1]) > 0, text[:500]
        for w in (workers[1], analytics[1]):
            w.send_signal(signal.SIGTERM)
            assert w.wait(timeout=15) == 0
    finally:
        for w in workers + analytics:
            if w.poll() is None:
                w.kill()
                w.wait()
