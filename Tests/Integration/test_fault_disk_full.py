"""Disk full under SQLite (issue 9): the hub's database lives on a small tmpfs that the test fills to the last byte
while candidates are saving.

While the disk is full, every save gets a clear `unavailable` reply that says the disk is full (never an ack and
never a hang), every socket stays open, pings, reads and new connections keep working. Once space is freed, saves
succeed again without a restart, and a refused save retried with its opId is applied once. At the end (after a
clean SIGTERM), `PRAGMA integrity_check` is ok and every acknowledged answer is stored with its version.

Needs root (or CAP_SYS_ADMIN) to mount the tmpfs, as CI has (`.ci/run` runs as root).
"""
from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import time
from datetime import datetime, timezone

import pytest

from examkit import attempt_doc, create_exam, db_answers, db_rows, join, save, save_ok, uid, wait_until

CANDIDATES = 4


@pytest.fixture
def small_fs(tmp_path):
    """A 16 MiB tmpfs, unmounted after the hub has stopped (fixtures tear down in reverse order)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"cannot mount a tmpfs for the disk-full test (needs root, as in CI): {r.stderr}"
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path) -> int:
    """Writes `path` until the filesystem has no byte left; returns the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = 0
    size = 1 << 20
    try:
        while size >= 1:
            try:
                written += os.write(fd, b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                size //= 2
    finally:
        os.close(fd)
    return written


def free_bytes(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_disk_full_gives_clear_errors_no_false_ack_and_no_corruption(small_fs, start_hub):
    db_path = small_fs / "db.sqlite"
    hub = start_hub({"EXAMHUB_DATABASE_URL": f"sqlite://{db_path}"})
    exam = create_exam(hub)
    acked: dict[str, tuple[str, int]] = {}  # attempt -> (value, version) of its last acknowledged save
    clients = {}
    for i in range(CANDIDATES):
        c = hub.client("candidate", uid("full"), label=f"cand{i}")
        attempt = join(c, exam["id"])["attemptId"]
        clients[attempt] = c
        for n in range(5):
            value = f"{attempt} before {n} " + "b" * 2000
            acked[attempt] = (value, save_ok(c, attempt, "q-text", value)["version"])
    bystander = hub.client("proctor", uid("by"))

    filler = small_fs / "filler"
    fill(filler)
    assert free_bytes(small_fs) == 0

    refused: dict[str, list[tuple[str, str]]] = {a: [] for a in clients}  # attempt -> [(opId, value)]
    slowest = 0.0
    tries = 0
    while any(len(r) < 3 for r in refused.values()):
        tries += 1
        assert tries <= 400, f"saves kept succeeding on a full disk: {tries} tries, refused {refused}"
        for attempt, c in clients.items():
            value = f"{attempt} while full {tries} " + "f" * 8000
            op = uid("op")
            started = time.monotonic()
            r = save(c, attempt, "q-text", value, op_id=op, timeout=15)
            slowest = max(slowest, time.monotonic() - started)
            if r["ok"]:  # the WAL had room for this one: a real ack, checked at the end like the others
                acked[attempt] = (value, r["data"]["version"])
                continue
            assert r["error"]["code"] == "unavailable", r
            assert "disk space" in r["error"]["message"], r
            refused[attempt].append((op, value))
    assert slowest < 10, f"a save on the full disk took {slowest:.1f}s"

    # Writes other than saves fail as clearly: a new attempt cannot start. Telemetry is accepted (it is scored in
    # memory) and its evidence is kept and written once there is room.
    with hub.client("candidate", uid("newcomer")) as newcomer:
        r = newcomer.request("attempt.join", examId=exam["id"])
        assert r["ok"] is False and r["error"]["code"] == "unavailable", r
        assert "disk space" in r["error"]["message"], r
    first = next(iter(clients))
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    r = clients[first].request("telemetry", attemptId=first, events=[{"kind": "focus.lost", "at": now}])
    assert r["ok"] is True and r["data"]["accepted"] == 1, r

    # Everything that does not write keeps working.
    for c in [*clients.values(), bystander]:
        c.ping()
    assert hub.http("GET", "/healthz")[0] == 200
    for attempt, (value, version) in acked.items():
        stored = attempt_doc(hub, attempt)["answers"]["q-text"]
        assert (stored["value"], stored["version"]) == (value, version), attempt
    with hub.client("proctor", uid("late")) as late:
        late.ping()
    assert hub.running

    os.unlink(filler)
    assert free_bytes(small_fs) > 1 << 20

    # Saves succeed again, with no restart; a refused save retried with its opId is applied once, on top of the
    # last acknowledged version (the refusal left nothing behind).
    for attempt, c in clients.items():
        op, value = refused[attempt][-1]
        wait_until(lambda: save(c, attempt, "q-number", 1)["ok"], 10, what="saves succeeding once space is back")
        retried = save_ok(c, attempt, "q-text", value, op_id=op)
        assert retried["version"] == acked[attempt][1] + 1, (retried, acked[attempt])
        acked[attempt] = (value, retried["version"])
        again = save_ok(c, attempt, "q-text", value, op_id=op)  # the same opId: answered, not applied twice
        assert again["version"] == retried["version"]
    wait_until(lambda: db_rows(db_path, "SELECT count(*) FROM telemetry_batches WHERE attempt_id = ?",
                               (first,))[0][0] == 1, 10, what="the telemetry evidence written once space is back")
    bystander.ping()
    for c in [*clients.values(), bystander]:
        c.close()

    assert hub.stop() == 0
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()
    for attempt, (value, version) in acked.items():
        assert db_answers(db_path, attempt)["q-text"] == (value, version), attempt
    total_refused = sum(len(r) for r in refused.values())
    print(f"disk full: {total_refused} saves refused with unavailable (slowest reply {slowest * 1000:.0f} ms), "
          f"{len(acked)} attempts' acknowledged answers intact, integrity_check ok")
