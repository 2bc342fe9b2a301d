"""Real local HTTP receivers for the notification worker's tests: a webhook endpoint and a mail API in SendGrid's
v3 `/v3/mail/send` format, each a threaded HTTP/1.1 server on 127.0.0.1, port 0, recording every request.

A receiver can be told to fail: `fail_first[n]` answers 500 to the first n requests of each event id, `status`
answers every request with that status, `delay` sleeps before answering (to keep batches in flight).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers.get("x-examhub-event-id", "")


class Receiver:
    def __init__(self, status: int = 200, fail_first: int = 0, delay: float = 0.0,
                 expected_auth: str | None = None):
        self.status = status
        self.fail_first = fail_first
        self.delay = delay
        self.expected_auth = expected_auth
        self.requests: list[Received] = []
        self._tries: dict[str, int] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._decide(headers)
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.requests.append(Received(self.path, headers, body, status))
                payload = b'{"ok":true}' if status < 300 else b'{"error":"try later"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _decide(self, headers: dict[str, str]) -> int:
        if self.expected_auth is not None and headers.get("authorization") != self.expected_auth:
            return 401
        with self._lock:
            key = headers.get("x-examhub-event-id", "")
            n = self._tries.get(key, 0) + 1
            self._tries[key] = n
            if n <= self.fail_first:
                return 500
        return self.status

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def ok(self) -> list[Received]:
        return [r for r in self.snapshot() if r.status < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def verify_signature(r: Received, secret: str, tolerance: float = 300) -> bool:
    """What a receiver does: HMAC-SHA256 over `<timestamp>.<body>` with the shared secret, compared in constant
    time, and a fresh timestamp."""
    parts = dict(p.split("=", 1) for p in r.headers.get("x-examhub-signature", "").split(",") if "=" in p)
    ts = parts.get("t", "")
    if ts != r.headers.get("x-examhub-timestamp") or not ts.isdigit():
        return False
    if abs(time.time() - int(ts)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{ts}.".encode() + r.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))
