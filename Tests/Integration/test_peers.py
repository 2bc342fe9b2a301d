"""The load-test peers (LoadTests/Peers): each one, started with start.sh on a free port, keeps the common contract
of LoadTests/Peers/README.md, checked with the `websockets` client: echo of text and binary (up to 1 MiB, larger
closes), broadcast to every other socket exactly once and in order (never back to the sender), 404 elsewhere (an
upgrade there is refused; hummingbird refuses with 400, see REFUSED_UPGRADE_STATUS), and a clean exit on SIGTERM.

Peers checked: $PEERS (comma-separated), default node-ws,python-websockets,socketify. hummingbird is not in the
default (CI does not build it); check it by hand with `PEERS=hummingbird`.
"""
from __future__ import annotations

import http.client
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "LoadTests" / "Peers" / "start.sh"
PEERS = [p for p in os.environ.get("PEERS", "node-ws,python-websockets,socketify").split(",") if p]
MIB = 1 << 20


class Peer:
    """A peer process started with start.sh; `stop()` sends SIGTERM and returns the exit code."""

    def __init__(self, name: str):
        self.name = name
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(["bash", str(START), name, str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        deadline = time.monotonic() + (600 if name == "hummingbird" else 30)
        want = f"listening on 127.0.0.1:{self.port}"
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"{name}: no '{want}' line; stderr:\n{''.join(self.stderr)}") from None
            if want in line:
                break

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def connect(self, path: str) -> ClientConnection:
        return connect(self.url(path), compression=None, max_size=4 * MIB, open_timeout=10, ping_interval=None)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -1


@pytest.fixture(scope="module", params=PEERS)
def peer(request):
    p = Peer(request.param)
    yield p
    rc = p.stop()
    assert rc == 0, f"{p.name} exited {rc} after SIGTERM; stderr:\n{''.join(p.stderr)}"


def test_start_sh_refuses_an_unknown_peer():
    out = subprocess.run(["bash", str(START), "no-such-peer", "1"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2 and "unknown peer" in out.stderr


# ---------------------------------------------------------------------------------------------------- echo


def test_echo_text_and_binary(peer):
    with peer.connect("/v1/echo") as ws:
        for text in ["hello", "héllo wörld ✓", "", "x" * 70_000]:
            ws.send(text)
            got = ws.recv(timeout=5)
            assert isinstance(got, str) and got == text, f"{peer.name}: text echo of {len(text)} chars differs"
        for data in [bytes(range(256)), b"", os.urandom(200_000)]:
            ws.send(data)
            got = ws.recv(timeout=5)
            assert isinstance(got, bytes) and got == data, f"{peer.name}: binary echo of {len(data)} bytes differs"


def test_echo_keeps_order_of_pipelined_messages(peer):
    with peer.connect("/v1/echo") as ws:
        sent = [f"m{i}" if i % 2 else f"m{i}".encode() for i in range(200)]
        for m in sent:
            ws.send(m)
        assert [ws.recv(timeout=5) for _ in sent] == sent


def test_message_limit_is_1_mib(peer):
    with peer.connect("/v1/echo") as ws:
        data = os.urandom(MIB)
        ws.send(data)
        assert ws.recv(timeout=10) == data, f"{peer.name}: a 1 MiB message did not come back"
    with peer.connect("/v1/echo") as ws:
        with pytest.raises(ConnectionClosed):  # uWS closes while the message is still being sent
            ws.send(os.urandom(MIB + 1))
            ws.recv(timeout=10)
            pytest.fail(f"{peer.name}: a message of 1 MiB + 1 byte was accepted")


# ----------------------------------------------------------------------------------------------- broadcast


def _settle(clients: list[ClientConnection]) -> None:
    """Returns once every client is known to the peer's broadcast registry and has read everything sent so far.

    A client's upgrade can complete before the peer registers it, so each round every client sends a marker and
    every client waits (briefly) for the others' markers; a round in which all markers reached everyone ends it.
    Messages from one sender arrive in order, so nothing from an earlier round can arrive afterwards."""
    for rnd in range(20):
        for i, c in enumerate(clients):
            c.send(f"settle-{rnd}-{i}")
        complete = True
        for j, c in enumerate(clients):
            want = {f"settle-{rnd}-{i}" for i in range(len(clients)) if i != j}
            deadline = time.monotonic() + 1
            while want:
                try:
                    m = c.recv(timeout=max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break
                assert isinstance(m, str) and m.startswith("settle-"), f"unexpected message while settling: {m!r}"
                assert m != f"settle-{rnd}-{j}", "the peer sent a client its own broadcast"
                want.discard(m)
            complete = complete and not want
        if complete:
            return
    raise AssertionError("broadcast sockets never all received each other's messages")


def _expect_next(c: ClientConnection, label: str, want: str) -> None:
    got = c.recv(timeout=5)
    assert got == want, f"{label}: expected {want!r} next, got {str(got)[:80]!r}"


def test_broadcast_reaches_every_other_socket_once_in_order(peer):
    with ExitStack() as stack:
        a, b, c = (stack.enter_context(peer.connect("/v1/broadcast")) for _ in range(3))
        _settle([a, b, c])
        sent = [f"msg-{i}-ü-" + "y" * (i * 997) for i in range(50)]
        for m in sent:
            a.send(m)
        for label, receiver in (("B", b), ("C", c)):
            got = [receiver.recv(timeout=5) for _ in sent]
            assert got == sent, f"{peer.name}: {label} got the 50 broadcasts wrong or out of order"
        # Fences: the next message each socket sees must be the fence, so A got none of its own 50 and B and C
        # got no duplicates.
        b.send("fence-B")
        _expect_next(a, f"{peer.name} A (the sender)", "fence-B")
        _expect_next(c, f"{peer.name} C", "fence-B")
        c.send("fence-C")
        _expect_next(a, f"{peer.name} A (the sender)", "fence-C")
        _expect_next(b, f"{peer.name} B", "fence-C")
        for label, ws in (("A", a), ("B", b), ("C", c)):
            with pytest.raises(TimeoutError):
                extra = ws.recv(timeout=0.3)
                pytest.fail(f"{peer.name}: {label} got an extra message {str(extra)[:80]!r}")


def test_broadcast_skips_closed_sockets_and_echo_sockets(peer):
    with ExitStack() as stack:
        a, b, gone = (stack.enter_context(peer.connect("/v1/broadcast")) for _ in range(3))
        echo = stack.enter_context(peer.connect("/v1/echo"))
        _settle([a, b, gone])
        gone.close()
        time.sleep(0.2)
        a.send("after-close")
        _expect_next(b, f"{peer.name} B", "after-close")
        with pytest.raises(TimeoutError):
            extra = echo.recv(timeout=0.3)
            pytest.fail(f"{peer.name}: an /v1/echo socket got a broadcast {extra!r}")


# ----------------------------------------------------------------------------------------------------- 404


# hummingbird-websocket 2.8.1 answers every refused upgrade with a hard-coded 400 (HTTP1WebSocketUpgradeChannel's
# writeFailedUpgrade), whatever the path; its plain HTTP requests do get the router's 404.
REFUSED_UPGRADE_STATUS = {"hummingbird": 400}


@pytest.mark.parametrize("path", ["/", "/v1/other", "/v1/echo/x"])
def test_other_paths_are_404(peer, path):
    want = REFUSED_UPGRADE_STATUS.get(peer.name, 404)
    with pytest.raises(InvalidStatus) as err:
        with peer.connect(path):
            pass
    got = err.value.response.status_code
    assert got == want, f"{peer.name}: upgrade on {path} answered {got}"
    conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=5)
    try:
        conn.request("GET", path)
        status = conn.getresponse().status
    finally:
        conn.close()
    assert status == 404, f"{peer.name}: plain GET {path} answered {status}"
