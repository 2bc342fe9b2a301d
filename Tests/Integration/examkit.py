"""Helpers for the live-assessment tests (issue 3, PROTOCOL.md sections 3, 4, 5.1-5.4 and 6): exam definitions,
the exam and attempt HTTP routes, attempt.join / answer.save / attempt.submit on a `Client`, read-only looks at
the hub's SQLite file, and hubs that may be killed and restarted on the same file.

Every HTTP body is checked against Protocols/schemas/http/*.json; socket frames are checked by `Client`.
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import contract
from hubclient import Client, Hub

_counter = itertools.count()


def uid(prefix: str) -> str:
    """A fresh identifier (exam ids, opIds), unique on a shared hub."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}"


def ts(text: str) -> float:
    """RFC 3339 -> seconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ----------------------------------------------------------------------------------------------- definitions

OPTIONS_SINGLE = ["A", "B", "C"]
OPTIONS_MULTI = ["x", "y", "z"]


def questions() -> list[dict]:
    """One question of each type: q-single, q-multi, q-text, q-number."""
    return [
        {"id": "q-single", "type": "single", "prompt": "Pick one", "options": list(OPTIONS_SINGLE)},
        {"id": "q-multi", "type": "multi", "prompt": "Pick some", "options": list(OPTIONS_MULTI)},
        {"id": "q-text", "type": "text", "prompt": "Explain"},
        {"id": "q-number", "type": "number", "prompt": "How many?"},
    ]


def exam_def(exam_id: str | None = None, duration: int = 3600, grace: int | None = 0,
             qs: list[dict] | None = None, **extra: Any) -> dict:
    d: dict[str, Any] = {"id": uid("e") if exam_id is None else exam_id, "title": "Integration exam", "durationSec": duration,
                         "questions": qs if qs is not None else questions(),
                         "proctoring": {"profile": "default"}}
    if grace is not None:
        d["graceSec"] = grace
    d.update(extra)
    return d


# ----------------------------------------------------------------------------------------------- HTTP


def http_json(hub: Hub, method: str, path: str, token: str | None = None, body: Any = None,
              raw: bytes | None = None) -> tuple[int, Any]:
    """One request; returns (status, parsed JSON body). Error bodies are checked against http/error.json."""
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    status, resp_headers, payload = hub.http(method, path, headers=headers, body=data)
    assert resp_headers.get("content-type", "").startswith("application/json"), (status, resp_headers, payload[:200])
    doc = json.loads(payload)
    if status >= 400:
        contract.validate("schemas/http/error.json", doc)
        assert doc["error"]["message"], doc
    return status, doc


def admin_token(hub: Hub, tenant: str = "t1", exams: list[str] | None = None, sub: str = "admin-1") -> str:
    return hub.token("admin", sub, tenant, exams)


def post_exam(hub: Hub, definition: Any, token: str | None = None, tenant: str = "t1") -> tuple[int, Any]:
    return http_json(hub, "POST", "/v1/exams", token or admin_token(hub, tenant), body=definition)


def create_exam(hub: Hub, tenant: str = "t1", **kw: Any) -> dict:
    """POSTs a definition (see `exam_def`), asserts 201 and the stored shape; returns the stored definition."""
    definition = exam_def(**kw)
    status, doc = post_exam(hub, definition, tenant=tenant)
    assert status == 201, (status, doc)
    contract.validate("schemas/http/exam.json", doc)
    assert doc["id"] == definition["id"]
    return doc


def get_attempt(hub: Hub, attempt_id: str, token: str | None = None, tenant: str = "t1") -> tuple[int, Any]:
    status, doc = http_json(hub, "GET", f"/v1/attempts/{attempt_id}", token or admin_token(hub, tenant))
    if status == 200:
        contract.validate("schemas/http/attempt.json", doc)
    return status, doc


def attempt_doc(hub: Hub, attempt_id: str, tenant: str = "t1") -> dict:
    status, doc = get_attempt(hub, attempt_id, tenant=tenant)
    assert status == 200, (status, doc)
    return doc


# ----------------------------------------------------------------------------------------------- socket ops


def join(c: Client, exam_id: str) -> dict:
    data = c.ok("attempt.join", examId=exam_id)
    assert data["attemptId"]
    return data


def save(c: Client, attempt_id: str, qid: str, value: Any, op_id: str | None = None,
         base: int | None = None, timeout: float = 5) -> dict:
    """An answer.save request; returns the whole reply (ok or not)."""
    fields: dict[str, Any] = {"attemptId": attempt_id, "qid": qid, "value": value, "opId": op_id or uid("op")}
    if base is not None:
        fields["baseVersion"] = base
    return c.request("answer.save", timeout=timeout, **fields)


def save_ok(c: Client, attempt_id: str, qid: str, value: Any, op_id: str | None = None,
            base: int | None = None) -> dict:
    r = save(c, attempt_id, qid, value, op_id, base)
    assert r["ok"] is True, f"{c.label}: answer.save {qid}={value!r} failed: {r}"
    assert r["data"]["qid"] == qid, r
    return r["data"]


def save_error(c: Client, attempt_id: str, qid: str, value: Any, code: str, op_id: str | None = None,
               base: int | None = None) -> dict:
    r = save(c, attempt_id, qid, value, op_id, base)
    assert r["ok"] is False, f"{c.label}: answer.save {qid}={value!r} should fail with {code}: {r}"
    assert r["error"]["code"] == code, f"{c.label}: expected {code}, got {r['error']}"
    assert r["error"]["message"], r
    return r["error"]


def events_of(c: Client, ch: str, type_: str | None = None, n: int = 1, timeout: float = 5) -> list[dict]:
    """The next `n` events on channel `ch` (of `type_` when given), skipping others; bounded by `timeout`."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{c.label}: only {len(out)} of {n} {type_} events on {ch} within {timeout}s: {out}"
        ev = c.event(timeout=remaining)
        if ev["ch"] == ch and (type_ is None or ev["type"] == type_):
            out.append(ev)
    return out


def drain_events(c: Client) -> list[dict]:
    """Every event received so far (a ping round trip as a barrier)."""
    c.ping()
    out = list(c.events)
    c.events.clear()
    return out


# ----------------------------------------------------------------------------------------------- SQLite


def db_rows(db_path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Reads the hub's SQLite file through a separate, read-only connection (WAL: sees every commit)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def db_answer(db_path: Path, attempt_id: str, qid: str) -> tuple[Any, int] | None:
    """(value, version) of one stored answer, or None."""
    rows = db_rows(db_path, "SELECT value, version FROM answers WHERE attempt_id = ? AND qid = ?", (attempt_id, qid))
    if not rows:
        return None
    value, version = rows[0]
    return json.loads(value), version


def db_answers(db_path: Path, attempt_id: str) -> dict[str, tuple[Any, int]]:
    rows = db_rows(db_path, "SELECT qid, value, version FROM answers WHERE attempt_id = ?", (attempt_id,))
    return {qid: (json.loads(value), version) for qid, value, version in rows}


# ----------------------------------------------------------------------------------------------- hubs


class KillableHubs:
    """Hubs started on one shared SQLite file, which a test may stop with SIGTERM (exit 0 asserted by the test)
    or SIGKILL, and start again. At teardown, what still runs is stopped with SIGTERM and must exit 0."""

    def __init__(self, base: Path):
        self.base = Path(base)
        self.db_path = self.base / "shared.sqlite"
        self.hubs: list[Hub] = []
        self._n = itertools.count()

    def start(self, env: dict[str, str] | None = None, **kw: Any) -> Hub:
        hub = Hub(self.base / f"run{next(self._n)}",
                  env={"EXAMHUB_DATABASE_URL": f"sqlite://{self.db_path}", **(env or {})}, **kw)
        hub.db_path = self.db_path
        self.hubs.append(hub)
        return hub

    @staticmethod
    def kill(hub: Hub) -> None:
        """SIGKILL, no goodbye."""
        hub.proc.send_signal(signal.SIGKILL)
        hub.proc.wait(timeout=10)
        hub._stderr.close()

    @staticmethod
    def terminate(hub: Hub) -> int:
        return hub.stop()

    def close(self) -> None:
        problems = []
        for hub in self.hubs:
            if hub.proc.poll() is None:
                rc = hub.stop()
                if rc != 0:
                    problems.append(f"hub on port {hub.port} exited {rc} after SIGTERM:\n{hub.stderr_tail()}")
            else:
                try:
                    hub._stderr.close()
                except Exception:
                    pass
        assert not problems, "\n".join(problems)


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(interval)

