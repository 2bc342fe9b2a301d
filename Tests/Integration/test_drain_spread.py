"""The drain spread over a window (issue 10): on SIGTERM the hub closes its sockets with 1001 evenly over
EXAMHUB_DRAIN_SPREAD_SEC, not all at once, so the clients of a node that stops reconnect to the other nodes over
that window. Readiness turns false at once; sockets whose turn has not come keep working (a save is acked and
committed); a save acknowledged just before SIGTERM is there after a restart; the process exits 0.
"""
from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from examkit import KillableHubs, attempt_doc, create_exam, join, save_ok, uid
from hubclient import run_cli

SOCKETS = 200
WINDOW = 3.0


@pytest.fixture
def hubs(tmp_path):
    pool = KillableHubs(tmp_path)
    yield pool
    pool.close()


async def _open(url: str, token: str):
    return await websockets.connect(
        url, subprotocols=["examhub.v1.json"], additional_headers={"Authorization": f"Bearer {token}"},
        compression=None, open_timeout=10, close_timeout=5, ping_interval=None, max_queue=None)


async def _watch(ws, started: list[float]) -> tuple[float, int | None]:
    """Reads until the hub closes the socket; returns (seconds after SIGTERM, close code received)."""
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass
    t = time.monotonic()
    return t - started[0], ws.close_code


async def _ping(ws, rid: int) -> dict:
    await ws.send(json.dumps({"op": "ping", "id": rid}))
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if msg.get("op") == "reply" and msg.get("id") == rid:
            return msg


def test_sigterm_spreads_1001_closes_over_the_window_and_keeps_acked_saves(hubs):
    hub = hubs.start({"EXAMHUB_DRAIN_SPREAD_SEC": str(WINDOW), "EXAMHUB_DRAIN_SEC": "5"})
    exam = create_exam(hub, qs=[{"id": "q1", "type": "text", "prompt": "Explain"}])

    # The candidate whose save is acknowledged right before SIGTERM (its socket is the oldest: closed first).
    early = hub.client("candidate", "c-early", label="early")
    early_attempt = join(early, exam["id"])["attemptId"]

    async def scenario():
        url = hub.url()
        tokens = [hub.token("candidate", f"c-{i}") for i in range(SOCKETS)]
        sockets = []
        for i in range(0, SOCKETS, 50):
            sockets += await asyncio.gather(*(_open(url, t) for t in tokens[i:i + 50]))
        # The newest socket is in its event loop's last slice: it still works halfway through the window.
        late = sockets[-1]
        assert (await _ping(late, 1))["ok"] is True

        # Acked just before SIGTERM, on the synchronous client in a thread (it owns its socket).
        acked = await asyncio.to_thread(save_ok, early, early_attempt, "q1", "saved before SIGTERM", uid("op"))
        started = [time.monotonic()]
        hub.proc.send_signal(signal.SIGTERM)
        watchers = [asyncio.ensure_future(_watch(ws, started)) for ws in sockets[:-1]]

        await asyncio.sleep(0.2)
        ready = await asyncio.to_thread(_readyz, hub)
        await asyncio.sleep(WINDOW * 0.5 - 0.2)
        mid = await _ping(late, 2)
        late_watch = asyncio.ensure_future(_watch(late, started))
        results = await asyncio.wait_for(asyncio.gather(*watchers, late_watch), WINDOW + 10)
        return acked, ready, mid, results

    acked, ready, mid, results = asyncio.run(scenario())
    assert hub.proc.wait(timeout=15) == 0, hub.stderr_tail()
    early.close()

    assert ready != 200, f"/readyz answered {ready} during the drain"
    assert mid["ok"] is True, f"a socket whose turn had not come stopped answering: {mid}"

    times = sorted(t for t, _ in results)
    codes = {code for _, code in results}
    assert codes == {1001}, f"close codes: {codes}"
    spread = times[-1] - times[0]
    first_tenth = sum(1 for t in times if t <= times[0] + WINDOW * 0.1)
    second_half = sum(1 for t in times if t >= WINDOW * 0.5)
    print(f"\n{SOCKETS} sockets, window {WINDOW}s: first close {times[0]:.3f}s, last {times[-1]:.3f}s after SIGTERM; "
          f"{first_tenth} in the first tenth, {second_half} in the second half")
    assert spread >= 0.6 * WINDOW, f"closes spanned only {spread:.2f}s of a {WINDOW}s window"
    assert times[-1] <= WINDOW + 2, f"the last close came {times[-1]:.2f}s after SIGTERM"
    assert first_tenth <= SOCKETS * 0.25, f"{first_tenth} of {SOCKETS} closes in the first tenth of the window"
    assert second_half >= SOCKETS * 0.3, f"only {second_half} of {SOCKETS} closes in the window's second half"
    # Evenly: no half-second holds more than a third of the closes.
    buckets: dict[int, int] = {}
    for t in times:
        buckets[int(t / 0.5)] = buckets.get(int(t / 0.5), 0) + 1
    assert max(buckets.values()) <= SOCKETS / 3, f"closes per half second: {sorted(buckets.items())}"

    again = hubs.start()
    doc = attempt_doc(again, early_attempt)
    answer = doc["answers"]["q1"]
    assert (answer["value"], answer["version"]) == ("saved before SIGTERM", acked["version"]), answer


def test_a_save_during_the_window_is_acked_and_committed(hubs):
    """A socket still open during the spread saves; the ack comes after the commit and survives the restart."""
    hub = hubs.start({"EXAMHUB_DRAIN_SPREAD_SEC": "2", "EXAMHUB_DRAIN_SEC": "5"})
    exam = create_exam(hub, qs=[{"id": "q1", "type": "text", "prompt": "Explain"}])
    # Two sockets per event loop (EXAMHUB_THREADS=2): the newer one of each loop goes in its last slice.
    clients = [hub.client("candidate", f"c-w{i}", label=f"w{i}") for i in range(4)]
    attempts = [join(c, exam["id"])["attemptId"] for c in clients]
    hub.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    saved = None
    for c, a in reversed(list(zip(clients, attempts))):
        try:
            saved = (a, save_ok(c, a, "q1", "saved during the drain"))
            break
        except (ConnectionClosed, AssertionError):
            continue
    assert saved is not None, "every socket was closed within half a second of a 2 s window"
    for c in clients:
        c.expect_close(1001, timeout=5)
    assert hub.proc.wait(timeout=15) == 0, hub.stderr_tail()
    again = hubs.start()
    answer = attempt_doc(again, saved[0])["answers"]["q1"]
    assert (answer["value"], answer["version"]) == ("saved during the drain", saved[1]["version"])


def test_spread_zero_closes_everything_at_once(hubs):
    hub = hubs.start({"EXAMHUB_DRAIN_SPREAD_SEC": "0"})
    clients = [hub.client("proctor", f"p-{i}", label=f"p{i}") for i in range(20)]
    started = time.monotonic()
    hub.proc.send_signal(signal.SIGTERM)
    for c in clients:
        c.expect_close(1001, timeout=5)
    assert time.monotonic() - started < 1.5
    assert hub.proc.wait(timeout=10) == 0


@pytest.mark.parametrize("value", ["-1", "601", "soon"])
def test_a_bad_spread_is_refused_at_start(tmp_path, value):
    out = run_cli("serve", env={"EXAMHUB_PORT": "0", "EXAMHUB_DATABASE_URL": f"sqlite://{tmp_path}/db.sqlite",
                                "EXAMHUB_DRAIN_SPREAD_SEC": value}, cwd=tmp_path, timeout=20)
    assert out.returncode > 0 and "EXAMHUB_DRAIN_SPREAD_SEC" in out.stderr, (out.returncode, out.stderr)


def _readyz(hub) -> int | str:
    """/readyz's status, or the error when the listener is closed (also not ready)."""
    try:
        return hub.http("GET", "/readyz")[0]
    except OSError as e:
        return f"refused ({e.__class__.__name__})"
