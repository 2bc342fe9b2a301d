"""Slow loris and connection floods on the upgrade (issue 9).

Before a socket is upgraded the hub holds an HTTP connection, and a stranger holds it for free: by never sending,
by sending the request a byte at a time, or by announcing a body and never sending it. EXAMHUB_HEADER_TIMEOUT
bounds all three (the whole request, head and body, from connect or from the previous response). After the
upgrade, EXAMHUB_AUTH_TIMEOUT closes sockets that never say hello (4001). Floods of either kind must not stop a
normal client from connecting and working meanwhile, must leave no descriptor behind, and must not push the
connection limits (EXAMHUB_MAX_CONNECTIONS_PER_IP, EXAMHUB_MAX_CONNECTIONS) past their values, even when the
upgrades race each other while their tokens are being verified.
"""
from __future__ import annotations

import base64
import os
import selectors
import socket
import time

from examkit import create_exam, join, save_ok, uid, wait_until

FLOOD = 300


def upgrade_request(hub, path: str = "/v1/socket", headers: dict[str, str] | None = None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {hub.host}:{hub.port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def closed_by_peer(sock: socket.socket) -> bool:
    """Reads what is there without blocking; True once the hub has closed the connection (EOF or reset)."""
    sock.setblocking(False)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def wait_all_closed(socks: list[socket.socket], timeout: float) -> float:
    """Waits until the hub has closed every socket; returns the seconds it took. Fails with the count left."""
    started = time.monotonic()
    left = set(range(len(socks)))
    sel = selectors.DefaultSelector()
    for i in left:
        socks[i].setblocking(False)
        sel.register(socks[i], selectors.EVENT_READ, i)
    try:
        while left:
            remaining = started + timeout - time.monotonic()
            assert remaining > 0, f"{len(left)} of {len(socks)} connections still open after {timeout}s"
            for key, _ in sel.select(timeout=min(remaining, 0.5)):
                i = key.data
                if closed_by_peer(socks[i]):
                    sel.unregister(socks[i])
                    left.discard(i)
        return time.monotonic() - started
    finally:
        sel.close()


def open_fds(hub) -> int:
    return len(os.listdir(f"/proc/{hub.proc.pid}/fd"))


def settled_fds(hub) -> int:
    """The hub's descriptor count once the sockets of earlier steps have closed."""
    time.sleep(0.5)
    return open_fds(hub)


def read_head(sock: socket.socket, timeout: float = 10) -> tuple[int, bytes]:
    """Reads the HTTP response head the hub sends on `sock`: (status code, bytes received after the head)."""
    sock.setblocking(True)
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        assert chunk, f"closed before a response head: {buf!r}"
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return int(head.split(b" ", 2)[1]), rest


def status_of(sock: socket.socket, timeout: float = 10) -> int:
    return read_head(sock, timeout)[0]


def trickle_until_closed(hub, payload: bytes, interval: float, limit: float, prefix: bytes = b"") -> tuple[float, int]:
    """Sends `prefix` at once, then `payload` one byte every `interval` seconds until the hub closes the
    connection; returns (seconds until closed, bytes of `payload` sent). Fails if `limit` seconds pass first or
    the whole payload went out."""
    sock = socket.create_connection((hub.host, hub.port), timeout=5)
    started = time.monotonic()
    sock.sendall(prefix)
    sent = 0
    try:
        while True:
            assert time.monotonic() - started < limit, f"still open after {limit}s and {sent} bytes"
            if sent < len(payload):
                try:
                    sock.sendall(payload[sent:sent + 1])
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - started, sent
                sent += 1
            else:
                raise AssertionError(f"the whole request ({sent} bytes) went out before the hub closed it")
            sel = selectors.DefaultSelector()
            sel.register(sock, selectors.EVENT_READ)
            ready = sel.select(timeout=interval)
            sel.close()
            if ready and closed_by_peer(sock):
                return time.monotonic() - started, sent
            sock.setblocking(True)
    finally:
        sock.close()


def test_upgrade_request_sent_a_byte_at_a_time_is_closed_within_the_timeout(start_hub):
    hub = start_hub({"EXAMHUB_HEADER_TIMEOUT": "1"})
    request = upgrade_request(hub, headers={"Authorization": f"Bearer {hub.token('candidate', 'slow')}"})
    took, sent = trickle_until_closed(hub, request, interval=0.05, limit=6)
    assert 0.8 < took < 3, took
    assert sent < len(request), (sent, len(request))
    print(f"slow loris: upgrade request trickled a byte per 50 ms closed after {took:.2f}s "
          f"({sent} of {len(request)} bytes sent, EXAMHUB_HEADER_TIMEOUT=1)")
    with hub.client("candidate", uid("c")) as c:  # the hub is fine
        c.ping()


def test_connection_that_never_sends_is_closed(start_hub):
    hub = start_hub({"EXAMHUB_HEADER_TIMEOUT": "1"})
    sock = socket.create_connection((hub.host, hub.port), timeout=5)
    try:
        took = wait_all_closed([sock], 4)
        assert 0.8 < took + 0.05 < 3, took
    finally:
        sock.close()


def test_upgrade_announcing_a_body_it_never_sends_is_closed(start_hub):
    """NIO's upgrader waits for the end of the request before it switches protocols: the timeout still covers
    that wait."""
    hub = start_hub({"EXAMHUB_HEADER_TIMEOUT": "1"})
    sock = socket.create_connection((hub.host, hub.port), timeout=5)
    try:
        sock.sendall(upgrade_request(hub, headers={"Content-Length": "100"}) + b"x" * 10)
        took = wait_all_closed([sock], 4)
        assert took < 3, took
    finally:
        sock.close()


def test_request_body_sent_a_byte_at_a_time_is_closed_within_the_timeout(start_hub):
    """The slow POST: a complete head, then a body that trickles. The timeout is for the whole request."""
    hub = start_hub({"EXAMHUB_HEADER_TIMEOUT": "1"})
    body = b'{"id":"' + b"e" * 2000 + b'"}'
    head = (f"POST /v1/exams HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    took, sent = trickle_until_closed(hub, body, interval=0.02, limit=8, prefix=head)
    assert 0.8 < took < 3, took
    assert 0 < sent < len(body), sent
    print(f"slow body: closed after {took:.2f}s ({sent} of {len(body)} body bytes sent)")


def test_kept_alive_connection_idle_after_a_response_is_closed(start_hub):
    hub = start_hub({"EXAMHUB_HEADER_TIMEOUT": "1"})
    sock = socket.create_connection((hub.host, hub.port), timeout=5)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(sock) == 200
        took = wait_all_closed([sock], 4)
        assert 0.5 < took < 3, took
    finally:
        sock.close()


def test_a_slow_client_within_the_timeout_still_upgrades(start_hub):
    """No false positive: a request spread over half the timeout is answered with 101."""
    hub = start_hub({"EXAMHUB_HEADER_TIMEOUT": "2"})
    request = upgrade_request(hub)
    sock = socket.create_connection((hub.host, hub.port), timeout=5)
    try:
        step = max(1, len(request) // 10)
        for i in range(0, len(request), step):
            sock.sendall(request[i:i + step])
            time.sleep(0.1)
        assert status_of(sock) == 101
    finally:
        sock.close()


def normal_client_works(hub, exam_id: str, saves: int = 10) -> float:
    """Connects, says hello, joins, saves; returns the slowest step in seconds."""
    slowest = 0.0
    t = time.monotonic()
    with hub.client("candidate", uid("normal")) as c:
        slowest = max(slowest, time.monotonic() - t)
        t = time.monotonic()
        attempt = join(c, exam_id)["attemptId"]
        slowest = max(slowest, time.monotonic() - t)
        for n in range(saves):
            t = time.monotonic()
            save_ok(c, attempt, "q-text", f"answer {n}")
            slowest = max(slowest, time.monotonic() - t)
    t = time.monotonic()
    assert hub.http("GET", "/healthz")[0] == 200
    return max(slowest, time.monotonic() - t)


def test_flood_of_half_open_connections_does_not_stop_a_normal_client(start_hub):
    """300 connections that send half a request head and stop: a normal candidate connects and saves meanwhile,
    the hub closes all 300 at the timeout, and its descriptors go back to where they were."""
    hub = start_hub({"EXAMHUB_HEADER_TIMEOUT": "5"})
    exam = create_exam(hub)
    normal_client_works(hub, exam["id"], saves=1)  # warm up
    fds_before = settled_fds(hub)
    flood = []
    try:
        for _ in range(FLOOD):
            s = socket.create_connection((hub.host, hub.port), timeout=5)
            s.sendall(b"GET /v1/socket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")  # never finished
            flood.append(s)
        wait_until(lambda: open_fds(hub) >= fds_before + FLOOD - 2, 5, what="the hub holding the flood")
        slowest = normal_client_works(hub, exam["id"], saves=20)
        held = open_fds(hub) - fds_before
        assert held >= FLOOD - 2, f"only {held} of the flood still held when the normal client finished"
        assert slowest < 2, f"a normal op took {slowest:.2f}s during the flood"
        took = wait_all_closed(flood, 10)
        print(f"half-open flood: {FLOOD} connections held, normal client's slowest op {slowest * 1000:.0f} ms, "
              f"all closed {took:.1f}s after the normal client finished")
    finally:
        for s in flood:
            s.close()
    wait_until(lambda: open_fds(hub) <= fds_before + 2, 5, what="descriptors back to the level before the flood")
    normal_client_works(hub, exam["id"], saves=1)


def test_flood_of_upgraded_sockets_that_never_say_hello_is_closed_with_4001(start_hub):
    """300 upgraded sockets with no token and no hello: a normal candidate works meanwhile, and every one of the
    300 is closed with 4001 at EXAMHUB_AUTH_TIMEOUT."""
    hub = start_hub({"EXAMHUB_AUTH_TIMEOUT": "5"})
    exam = create_exam(hub)
    normal_client_works(hub, exam["id"], saves=1)
    fds_before = settled_fds(hub)
    flood = []
    try:
        for _ in range(FLOOD):
            s = socket.create_connection((hub.host, hub.port), timeout=5)
            s.sendall(upgrade_request(hub))
            flood.append(s)
        leftovers = []
        for s in flood:
            status, rest = read_head(s)
            assert status == 101, status
            leftovers.append(rest)
        slowest = normal_client_works(hub, exam["id"], saves=20)
        held = open_fds(hub) - fds_before
        assert held >= FLOOD - 2, f"only {held} of the flood still held when the normal client finished"
        assert slowest < 2, f"a normal op took {slowest:.2f}s during the flood"
        codes = set()
        for s, buf in zip(flood, leftovers):  # a close frame with 4001 on each (unmasked: 0x88, length, code)
            s.settimeout(8)
            while len(buf) < 4:
                chunk = s.recv(64)
                assert chunk, f"closed without a close frame: {buf!r}"
                buf += chunk
            assert buf[0] == 0x88, buf
            codes.add(int.from_bytes(buf[2:4], "big"))
        assert codes == {4001}, codes
        print(f"unauthenticated flood: {FLOOD} upgraded sockets held, normal client's slowest op "
              f"{slowest * 1000:.0f} ms, all closed with 4001")
    finally:
        for s in flood:
            s.close()
    wait_until(lambda: open_fds(hub) <= fds_before + 2, 5, what="descriptors back to the level before the flood")


def test_per_ip_limit_holds_under_a_flood_of_racing_upgrades(start_hub):
    """EXAMHUB_MAX_CONNECTIONS_PER_IP=20 and 300 upgrades from one address sent at once, each with a bearer
    token (so they race each other while the tokens are verified): exactly 20 get 101, the other 280 get 429,
    while a client from another address (127.0.0.2) is not affected; once the 20 close, the address may connect
    again."""
    hub = start_hub({"EXAMHUB_MAX_CONNECTIONS_PER_IP": "20"})
    exam = create_exam(hub)
    token = hub.token("proctor", "flooder")
    requests = [upgrade_request(hub, headers={"Authorization": f"Bearer {token}"}) for _ in range(FLOOD)]
    flood = []
    try:
        for r in requests:
            s = socket.create_connection((hub.host, hub.port), timeout=5)
            flood.append(s)
        for s, r in zip(flood, requests):
            s.sendall(r)
        statuses = [status_of(s) for s in flood]
        counts = {code: statuses.count(code) for code in set(statuses)}
        assert counts == {101: 20, 429: FLOOD - 20}, counts
        other = normal_client_works_from(hub, exam["id"], "127.0.0.2")
        assert other < 4, other
        print(f"per-IP flood: {FLOOD} racing upgrades with tokens, {counts[101]} admitted, {counts[429]} refused 429")
    finally:
        for s in flood:
            s.close()
    wait_until(lambda: try_upgrade(hub) == 101, 5, what="127.0.0.1 admitted again once its sockets closed")


def test_node_connection_limit_holds_under_a_flood_of_racing_upgrades(start_hub):
    """EXAMHUB_MAX_CONNECTIONS=25 and 300 racing upgrades with bearer tokens: exactly 25 get 101, the rest 503."""
    hub = start_hub({"EXAMHUB_MAX_CONNECTIONS": "25"})
    token = hub.token("proctor", "flooder")
    flood = []
    try:
        for _ in range(FLOOD):
            flood.append(socket.create_connection((hub.host, hub.port), timeout=5))
        for s in flood:
            s.sendall(upgrade_request(hub, headers={"Authorization": f"Bearer {token}"}))
        statuses = [status_of(s) for s in flood]
        counts = {code: statuses.count(code) for code in set(statuses)}
        assert counts == {101: 25, 503: FLOOD - 25}, counts
        print(f"node-limit flood: {FLOOD} racing upgrades with tokens, {counts[101]} admitted, {counts[503]} refused 503")
    finally:
        for s in flood:
            s.close()
    wait_until(lambda: try_upgrade(hub) == 101, 5, what="a slot free again once the sockets closed")


def try_upgrade(hub) -> int:
    s = socket.create_connection((hub.host, hub.port), timeout=5)
    try:
        s.sendall(upgrade_request(hub))
        return status_of(s)
    finally:
        s.close()


def normal_client_works_from(hub, exam_id: str, source: str) -> float:
    """A candidate connecting from another loopback address: hello, join, a few saves; the slowest step."""
    t = time.monotonic()
    with hub.client("candidate", uid("other"), source_address=(source, 0)) as c:
        attempt = join(c, exam_id)["attemptId"]
        for n in range(5):
            save_ok(c, attempt, "q-text", f"answer {n}")
    return time.monotonic() - t
