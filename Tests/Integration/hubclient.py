"""Helpers for the ExamHub end-to-end tests: a running `examhub serve` process, JWT minting, a JSON client on
top of `websockets`' sync client that validates every frame against the contract in Protocols/, a raw
RFC 6455 client for frames `websockets` refuses to send (invalid UTF-8, unmasked, reserved opcodes), and a
tiny HTTP helper.

Nothing here talks to anything but 127.0.0.1.
"""
from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import http.client
import inspect
import json
import os
import queue
import re
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as _ws_connect

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Tests" / "Contract"))
import contract  # noqa: E402

SUBPROTOCOL = "examhub.v1.json"
DEFAULT_SECRET = "it-secret-0123456789abcdef0123456789abcdef0123456789abcdef"
# The production-mode hub of conftest.py (`prod_hub`).
PROD_ISSUER = "https://idp.example"
PROD_AUDIENCE = "examhub"
PROD_ORIGINS = ["https://exam.example", "https://proctor.example"]
LISTENING = re.compile(r"^examhub listening on (\S+):(\d+)\s*$")

_CONNECT_KW: dict[str, Any] = {}
if "legacy" in inspect.signature(_ws_connect).parameters:
    _CONNECT_KW["legacy"] = True  # plain ClientConnection, no deprecation warning (websockets >= 17.1)
if "proxy" in inspect.signature(_ws_connect).parameters:
    _CONNECT_KW["proxy"] = None  # never route 127.0.0.1 through an HTTP(S)_PROXY from the environment


def binary_path() -> Path:
    raw = os.environ.get("EXAMHUB_BIN", ".build/debug/examhub")
    p = Path(raw)
    return p if p.is_absolute() else REPO / p


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any EXAMHUB_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMHUB_")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


# ----------------------------------------------------------------------------------------------- JWTs


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_b64(obj: Any) -> str:
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def claims(sub: str, tenant: str, role: str, ttl: float = 3600, exams: list[str] | None = None,
           **extra: Any) -> dict:
    now = int(time.time())
    c: dict[str, Any] = {"sub": sub, "tenant": tenant, "role": role, "iat": now, "exp": int(now + ttl)}
    if exams is not None:
        c["exams"] = exams
    c.update(extra)
    return c


def jwt_hs256(payload: dict, secret: str | bytes, header: dict | None = None) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    head = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{_json_b64(head)}.{_json_b64(payload)}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64u(sig)}"


def jwt_none(payload: dict) -> str:
    return f"{_json_b64({'alg': 'none', 'typ': 'JWT'})}.{_json_b64(payload)}."


def jwt_rs256(payload: dict, private_key, kid: str | None) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    head = {"alg": "RS256", "typ": "JWT"}
    if kid is not None:
        head["kid"] = kid
    signing_input = f"{_json_b64(head)}.{_json_b64(payload)}"
    sig = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64u(sig)}"


def jwt_es256(payload: dict, private_key, kid: str | None) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    head = {"alg": "ES256", "typ": "JWT"}
    if kid is not None:
        head["kid"] = kid
    signing_input = f"{_json_b64(head)}.{_json_b64(payload)}"
    r, s = decode_dss_signature(private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64u(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def rsa_jwk(public_key, kid: str) -> dict:
    nums = public_key.public_numbers()
    n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
    e = nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64u(n), "e": b64u(e)}


def ec_jwk(public_key, kid: str) -> dict:
    nums = public_key.public_numbers()
    return {"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
            "x": b64u(nums.x.to_bytes(32, "big")), "y": b64u(nums.y.to_bytes(32, "big"))}


# ----------------------------------------------------------------------------------------------- contract


def validate_reply(op: str, frame: dict) -> None:
    """Contract check of a reply to `op` (error replies of ops the contract does not know included)."""
    if op in contract.index()["ops"]:
        contract.validate_reply(op, frame)
    else:
        assert frame.get("ok") is False, f"an unknown op {op!r} cannot succeed: {frame}"
        contract.validate(contract.index()["errorReply"], frame)


# ----------------------------------------------------------------------------------------------- JSON client


class Client:
    """One hub socket. Every frame received is parsed and checked against the contract: events as they arrive,
    replies against the schema of the op they answer. Events that arrive while waiting for a reply are kept, in
    order, for `event()`."""

    def __init__(self, ws, label: str = ""):
        self.ws = ws
        self.label = label
        self._next_id = 0
        self.events: collections.deque[dict] = collections.deque()

    # --- raw I/O

    def send(self, message: Any) -> None:
        """Sends a dict/list as JSON text, a str as text, bytes as a binary message."""
        if isinstance(message, (dict, list)):
            message = json.dumps(message)
        self.ws.send(message)

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def recv(self, timeout: float = 5) -> dict:
        raw = self.ws.recv(timeout=timeout)
        assert isinstance(raw, str), f"{self.label}: the hub sent a binary message: {raw!r}"
        frame = json.loads(raw)
        assert isinstance(frame, dict), f"{self.label}: not a JSON object: {raw}"
        if frame.get("op") == "event":
            contract.validate_event(frame)
        else:
            contract.validate_server_frame(frame)
        return frame

    # --- requests

    def request(self, op: str, timeout: float = 5, **fields: Any) -> dict:
        """Sends `{"op": op, "id": <new>, **fields}` and returns its (validated) reply."""
        rid = self.next_id()
        self.send({"op": op, "id": rid, **fields})
        return self.reply(rid, op, timeout)

    def reply(self, rid: int, op: str, timeout: float = 5) -> dict:
        """Waits for the reply with id `rid`, keeping events that come first."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv(max(0.01, deadline - time.monotonic()))
            if frame["op"] == "event":
                self.events.append(frame)
                continue
            assert frame["op"] == "reply", frame
            assert frame["id"] == rid, f"{self.label}: expected the reply to id {rid}, got {frame}"
            validate_reply(op, frame)
            return frame

    def ok(self, op: str, **fields: Any) -> dict:
        r = self.request(op, **fields)
        assert r["ok"] is True, f"{self.label}: {op} failed: {r}"
        return r["data"]

    def error(self, op: str, code: str, **fields: Any) -> dict:
        r = self.request(op, **fields)
        assert r["ok"] is False, f"{self.label}: {op} should fail with {code}, got {r}"
        assert r["error"]["code"] == code, f"{self.label}: {op}: expected {code}, got {r['error']}"
        assert r["error"]["message"], r
        return r["error"]

    def hello(self, token: str) -> dict:
        return self.ok("hello", token=token)

    def ping(self) -> dict:
        data = self.ok("ping")
        assert set(data) >= {"serverTime"}
        return data

    # --- events

    def event(self, timeout: float = 5) -> dict:
        """The next event (kept or new); a reply arriving instead is a failure."""
        if self.events:
            return self.events.popleft()
        frame = self.recv(timeout)
        assert frame["op"] == "event", f"{self.label}: expected an event, got {frame}"
        return frame

    def events_n(self, n: int, timeout: float = 5) -> list[dict]:
        return [self.event(timeout) for _ in range(n)]

    def assert_no_event(self) -> None:
        """A ping round trip as a barrier: nothing but its reply may arrive before it."""
        assert not self.events, f"{self.label}: unexpected events {list(self.events)}"
        self.ping()
        assert not self.events, f"{self.label}: unexpected events {list(self.events)}"

    # --- closing

    def expect_close(self, code: int, timeout: float = 5) -> list[dict]:
        """Reads until the hub closes the socket; asserts the close code; returns the frames read before."""
        frames = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.label}: not closed within {timeout}s (expected {code})")
                raw = self.ws.recv(timeout=remaining)
                frames.append(json.loads(raw) if isinstance(raw, str) else raw)
        except TimeoutError:
            raise AssertionError(f"{self.label}: not closed within {timeout}s (expected {code})") from None
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, f"{self.label}: TCP closed without a close frame (expected {code})"
            assert closed.rcvd.code == code, f"{self.label}: close code {closed.rcvd.code}, expected {code}"
        return frames

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------- raw client


class RawWS:
    """A minimal RFC 6455 client over a plain socket, for frames a conforming library will not send."""

    def __init__(self, host: str, port: int, path: str = "/v1/socket", headers: dict[str, str] | None = None,
                 timeout: float = 5):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed during the handshake: {self.buf!r}")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head  # the 101 response head, for tests that read its headers
        status = head.split(b"\r\n", 1)[0]
        assert b" 101 " in status + b" ", f"upgrade refused: {head!r}"
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        assert accept in head, "bad Sec-WebSocket-Accept"

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0) -> None:
        self.sock.sendall(self.frame(opcode, payload, fin, mask, rsv))

    def send_texts(self, *messages: Any) -> None:
        """Several text messages (dicts are sent as JSON) in one TCP write, so the hub reads them together."""
        self.sock.sendall(b"".join(
            self.frame(0x1, (json.dumps(m) if isinstance(m, dict) else m).encode()) for m in messages))

    @staticmethod
    def frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            header = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            header = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            header += key
        return header + payload

    def send_text(self, text: str | bytes) -> None:
        self.send_frame(0x1, text.encode() if isinstance(text, str) else text)

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("raw websocket read timed out")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self, timeout: float = 5) -> tuple[bool, int, bytes]:
        deadline = time.monotonic() + timeout
        b0, b1 = self._read(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read(2, deadline))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read(8, deadline))
        assert not b1 & 0x80, "server frames must not be masked"
        return bool(b0 & 0x80), b0 & 0x0F, self._read(n, deadline)

    def recv_json(self, timeout: float = 5) -> dict:
        """The next text message (pings answered, pongs skipped), parsed and checked against the contract."""
        while True:
            fin, opcode, payload = self.recv_frame(timeout)
            if opcode == 0x9:
                self.send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            assert opcode == 0x1 and fin, f"expected a text frame, got opcode {opcode}: {payload!r}"
            frame = json.loads(payload.decode("utf-8"))
            contract.validate_server_frame(frame)
            return frame

    def reply(self, rid: int, timeout: float = 5) -> dict:
        """The next text message, which must be the reply to `rid` (checked against the error-reply schema when
        it failed; ok replies against the generic envelope)."""
        frame = self.recv_json(timeout)
        assert frame.get("op") == "reply" and frame.get("id") == rid, f"expected the reply to {rid}, got {frame}"
        return frame

    def expect_close(self, code: int, timeout: float = 5) -> list:
        """Reads until a close frame; asserts its code; answers it; returns the frames read before it."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            fin, opcode, payload = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if opcode == 0x8:
                got = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                assert got == code, f"close code {got} ({payload[2:]!r}), expected {code}"
                try:
                    self.send_frame(0x8, payload[:2])
                except OSError:
                    pass
                return seen
            seen.append((opcode, payload))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------- the hub


class Hub:
    """One `examhub serve` process on 127.0.0.1, port 0, in its own temporary directory."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None, secret: str | None = DEFAULT_SECRET,
                 dev: bool = True, default_claims: dict | None = None, start_timeout: float = 20):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.workdir / "db.sqlite"
        self.secret = secret
        self.default_claims = default_claims or {}
        self.stdout_lines: list[str] = []
        base = {
            "EXAMHUB_HOST": "127.0.0.1",
            "EXAMHUB_PORT": "0",
            "EXAMHUB_DEV": "1" if dev else "0",
            "EXAMHUB_DATABASE_URL": f"sqlite://{self.db_path}",
            "EXAMHUB_THREADS": "2",
            "EXAMHUB_DRAIN_SEC": "5",
            # Closes all at once at teardown; test_drain_spread.py sets a window and measures it.
            "EXAMHUB_DRAIN_SPREAD_SEC": "0",
        }
        if secret is not None:
            base["EXAMHUB_JWT_SECRET"] = secret
        base.update(env or {})
        self.env = clean_env(**base)
        self.stderr_path = self.workdir / "stderr.log"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([str(binary_path()), "serve"], cwd=self.workdir, env=self.env,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.host, self.port = self._wait_listening(start_timeout)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout_lines.append(line.rstrip("\n"))
            self._lines.put(line)
        self._lines.put(None)

    def _wait_listening(self, timeout: float) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.proc.kill()
                raise RuntimeError(f"examhub did not report listening within {timeout}s: {self.stderr_tail()}")
            if line is None:
                self.proc.wait()
                raise RuntimeError(f"examhub exited with {self.proc.returncode} before listening: "
                                   f"{self.stderr_tail()}")
            m = LISTENING.match(line)
            if m:
                return m.group(1), int(m.group(2))

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then wait for the exit; returns the exit code (-9 when it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._stderr.close()
                return -9
        self._stderr.close()
        return self.proc.returncode

    # --- tokens

    def token(self, role: str = "candidate", sub: str = "u1", tenant: str = "t1", exams: list[str] | None = None,
              ttl: float = 3600, secret: str | None = None, **extra: Any) -> str:
        payload = claims(sub, tenant, role, ttl=ttl, exams=exams, **{**self.default_claims, **extra})
        return jwt_hs256(payload, secret or self.secret)

    # --- sockets

    def url(self, path: str = "/v1/socket") -> str:
        return f"ws://{self.host}:{self.port}{path}"

    def ws(self, path: str = "/v1/socket", subprotocols: list[str] | None = None, origin: str | None = None,
           headers: dict[str, str] | None = None, **kw: Any):
        return _ws_connect(self.url(path), subprotocols=subprotocols, origin=origin, additional_headers=headers,
                           compression=None, open_timeout=5, close_timeout=3, ping_interval=None,
                           **{**_CONNECT_KW, **kw})

    def connect(self, label: str = "", bearer: str | None = None, **kw: Any) -> Client:
        headers = dict(kw.pop("headers", None) or {})
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        return Client(self.ws(headers=headers or None, **kw), label=label)

    def client(self, role: str = "candidate", sub: str = "u1", tenant: str = "t1", exams: list[str] | None = None,
               label: str | None = None, **kw: Any) -> Client:
        """A socket that has said hello with a fresh token for (role, sub, tenant, exams)."""
        c = self.connect(label=label or f"{tenant}/{role}/{sub}", **kw)
        data = c.hello(self.token(role, sub, tenant, exams))
        assert data["user"] == {"id": sub, "tenant": tenant, "role": role}
        return c

    def raw(self, path: str = "/v1/socket", headers: dict[str, str] | None = None) -> RawWS:
        return RawWS(self.host, self.port, path, headers)

    # --- HTTP

    def http(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    # --- store

    def sql(self, statement: str, args: tuple = ()) -> None:
        db = sqlite3.connect(self.db_path, timeout=10)
        try:
            db.execute(statement, args)
            db.commit()
        finally:
            db.close()

    def insert_attempt(self, attempt_id: str, tenant: str, exam_id: str, candidate: str) -> None:
        now = int(time.time() * 1000)
        self.sql("INSERT INTO attempts (id, tenant, exam_id, candidate, state, deadline_ms, started_ms) "
                 "VALUES (?, ?, ?, ?, 'in_progress', ?, ?)",
                 (attempt_id, tenant, exam_id, candidate, now + 3_600_000, now))

    def insert_conversation(self, conversation_id: str, tenant: str, owner: str) -> None:
        self.sql("INSERT INTO conversations (id, tenant, owner, created_ms) VALUES (?, ?, ?, ?)",
                 (conversation_id, tenant, owner, int(time.time() * 1000)))


def refused_status(excinfo) -> tuple[int, dict]:
    """Status and JSON body of a refused upgrade (`websockets.exceptions.InvalidStatus`)."""
    exc = excinfo.value if hasattr(excinfo, "value") else excinfo
    assert isinstance(exc, InvalidStatus), f"expected an HTTP refusal, got {exc!r}"
    body = json.loads(exc.response.body.decode() or "null")
    return exc.response.status_code, body


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary_path()), *args], env=clean_env(**(env or {})), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


