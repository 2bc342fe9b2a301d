"""Runs one conformance case (cases/autobahn.py) against one endpoint of a running hub and judges it.

`/v1/echo` answers a data message with the same message. `/v1/socket` speaks the JSON protocol: the socket says
`hello` first; a text message the case sends is wrapped into a `ping` op, and its answer is the op's `ok` reply;
a text message that cannot be wrapped (see autobahn.py) gets a `bad_request` error event on channel `conn`; a
binary message closes the socket with 1003.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from wsframes import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, FrameConn, frame

ENDPOINTS = {"echo": "/v1/echo", "socket": "/v1/socket"}
HELLO_ID = 999_999
PROBE = b"conformance-probe"


@dataclass
class Outcome:
    case_id: str
    endpoint: str
    passed: bool
    detail: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    # Autobahn's grade for a passing case: "OK", or "NON-STRICT" where a `fail_fast` case was answered only
    # after the whole frame had arrived (RFC 6455 allows it; failing fast is better).
    grade: str = "OK"


def _json_safe(data: bytes) -> bool:
    return not any(b < 0x20 or b in (0x22, 0x5C) for b in data)


def _wrapper(msg_id: int) -> tuple[bytes, bytes]:
    return f'{{"op":"ping","id":{msg_id},"x":"'.encode(), b'"}'


class _Plan:
    """The bytes to write (segments: bytes, or a float for a pause) and, per completed client message, what
    answers it on this endpoint."""

    def __init__(self, case: dict, endpoint: str):
        self.endpoint = endpoint
        self.segments: list = []
        self.answers: list[tuple] = []  # per completed message: ("data", kind, bytes) | ("reply", id) | ("event",)
        self.first_data_binary: bool | None = None
        self._next_id = 1
        self._pending = b""
        self._plan_frames(case)

    def _emit(self, data: bytes) -> None:
        self._pending += data

    def _pause(self, seconds: float) -> None:
        if self._pending:
            self.segments.append(self._pending)
            self._pending = b""
        self.segments.append(float(seconds))

    def _finish(self) -> None:
        if self._pending:
            self.segments.append(self._pending)
            self._pending = b""

    def _answer(self, kind: str, payload: bytes, msg_id: int | None) -> None:
        if self.endpoint == "echo":
            self.answers.append(("data", kind, payload))
        elif msg_id is not None:
            self.answers.append(("reply", msg_id))
        else:
            self.answers.append(("event",))

    def _plan_frames(self, case: dict) -> None:
        steps = case["steps"]
        # Group raw frames into messages the way the server should see them, to decide wrapping per message.
        groups: dict[int, list[int]] = {}
        open_group: int | None = None
        for i, st in enumerate(steps):
            if "frame" not in st or st["frame"] >= 0x8 or st["rsv"] or not st["mask"]:
                continue
            op = st["frame"]
            if op in (OP_TEXT, OP_BINARY) and open_group is None:
                open_group = i
                groups[i] = [i]
            elif op == OP_CONT and open_group is not None:
                groups[open_group].append(i)
            else:
                continue
            if st["fin"]:
                open_group = None
        wrap_of: dict[int, tuple[int | None, bool, bool]] = {}  # frame index -> (id, is first, is last)
        if self.endpoint == "socket":
            for start, members in groups.items():
                frames = [steps[j] for j in members]
                if frames[0]["frame"] != OP_TEXT:
                    continue
                complete = frames[-1]["fin"]
                if all(f["wrap"] for f in frames) and _json_safe(b"".join(f["data"] for f in frames)):
                    mid = self._take_id()
                    for k, j in enumerate(members):
                        wrap_of[j] = (mid, k == 0, complete and k == len(members) - 1)
        # Emit.
        state_open: dict | None = None  # {"kind", "data", "id"} of the message being sent
        for i, st in enumerate(steps):
            if "sleep" in st:
                self._pause(st["sleep"])
                continue
            if "message" in st:
                self._plan_message(st)
                continue
            op, data = st["frame"], st["data"]
            mid, first, last = wrap_of.get(i, (None, False, False))
            if mid is not None:
                prefix, suffix = _wrapper(mid)
                data = (prefix if first else b"") + data + (suffix if last else b"")
            self._emit(frame(op, data, st["fin"], st["rsv"], st["mask"]))
            if op >= 0x8 or st["rsv"] or not st["mask"]:
                continue
            if op in (OP_TEXT, OP_BINARY) and state_open is None:
                if self.first_data_binary is None:
                    self.first_data_binary = op == OP_BINARY
                state_open = {"kind": "text" if op == OP_TEXT else "binary", "data": data, "id": mid}
            elif op == OP_CONT and state_open is not None:
                state_open["data"] += data
            else:
                continue
            if st["fin"]:
                self._answer(state_open["kind"], state_open["data"], state_open["id"])
                state_open = None
        self._finish()

    def _take_id(self) -> int:
        mid = self._next_id
        self._next_id += 1
        return mid

    def _plan_message(self, st: dict) -> None:
        kind, n, piece = st["message"], st["size"], st["piece"]
        if self.first_data_binary is None:
            self.first_data_binary = kind == "binary"
        mid = None
        if kind == "text" and self.endpoint == "socket":
            prefix, suffix = _wrapper(self._next_id)
            if n >= len(prefix) + len(suffix):
                mid = self._take_id()
                payload = prefix + b"x" * (n - len(prefix) - len(suffix)) + suffix
            else:
                payload = b"x" * n
        elif kind == "binary":
            payload = (bytes(range(256)) * (n // 256 + 1))[:n]
        else:
            payload = b"y" * n
        opcode = OP_TEXT if kind == "text" else OP_BINARY
        if not piece or piece >= n:
            self._emit(frame(opcode, payload))
        else:
            chunks = [payload[i:i + piece] for i in range(0, n, piece)]
            for k, chunk in enumerate(chunks):
                self._emit(frame(opcode if k == 0 else OP_CONT, chunk, fin=k == len(chunks) - 1))
        self._answer(kind, payload, mid)


def expected_for(case: dict, endpoint: str, plan: _Plan) -> list:
    if endpoint == "socket":
        if "socket_expect" in case:
            return list(case["socket_expect"])
        if plan.first_data_binary:
            return [("close", [1003])]
    return list(case["expect"])


def _show(obs: tuple) -> str:
    if obs[0] in ("text", "binary", "pong"):
        data = obs[1]
        shown = data[:80] + (b"..." if len(data) > 80 else b"")
        return f"{obs[0]}({len(data)} bytes: {shown!r})"
    if obs[0] == "close":
        return f"close({obs[1]}, {obs[2][:40]!r})"
    return repr(obs)


def _matches(item, obs: tuple, answers: list, answer_index: int) -> tuple[bool, str]:
    """Whether observation `obs` is expected `item`; the reason when not."""
    if item == "E":
        if answer_index >= len(answers):
            return False, "the case expects more answers than it sent messages (bad case)"
        answer = answers[answer_index]
        if answer[0] == "data":
            ok = obs[0] == answer[1] and obs[1] == answer[2]
            return ok, "" if ok else f"expected the {answer[1]} message echoed ({len(answer[2])} bytes)"
        if answer[0] in ("reply", "event"):
            if obs[0] != "text":
                return False, f"expected a JSON {answer[0]}"
            try:
                doc = json.loads(obs[1].decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                return False, f"the hub sent text that is not JSON ({e})"
            if answer[0] == "reply":
                ok = (isinstance(doc, dict) and doc.get("op") == "reply" and doc.get("id") == answer[1]
                      and doc.get("ok") is True)
                return ok, "" if ok else f"expected the ok reply to ping id {answer[1]}"
            ok = (isinstance(doc, dict) and doc.get("op") == "event" and doc.get("ch") == "conn"
                  and doc.get("type") == "error" and doc.get("data", {}).get("code") == "bad_request")
            return ok, "" if ok else "expected a bad_request error event on channel conn"
        return False, f"unknown answer {answer}"
    if item[0] == "pong":
        ok = obs[0] == "pong" and obs[1] == item[1]
        return ok, "" if ok else f"expected pong {item[1][:40]!r}"
    if item[0] == "close":
        ok = obs[0] == "close" and obs[1] in item[1]
        return ok, "" if ok else f"expected close with code in {item[1]}"
    return False, f"unknown expectation {item!r}"


def run_case(case: dict, endpoint: str, host: str, port: int, token: str | None = None) -> Outcome:
    started = time.monotonic()
    out = Outcome(case["id"], endpoint, False)
    plan = _Plan(case, endpoint)
    expected = expected_for(case, endpoint, plan)
    answers = plan.answers
    timeout = case.get("timeout", 5)
    conn = FrameConn(host, port, ENDPOINTS[endpoint])
    seen: list[tuple] = []
    try:
        if endpoint == "socket":
            conn.send(OP_TEXT, json.dumps({"op": "hello", "id": HELLO_ID, "token": token}).encode())
            obs = conn.next_observation(5)
            doc = json.loads(obs[1]) if obs[0] == "text" else None
            if not (doc and doc.get("id") == HELLO_ID and doc.get("ok") is True):
                out.detail = f"hello was not answered ok: {_show(obs)}"
                return out
        early = False
        for seg in plan.segments:
            if isinstance(seg, float):
                time.sleep(seg)
                continue
            ok = conn.write(seg, case.get("chop"), case.get("pause", 0.0))
            early = early or conn.answered_early
            if not ok:
                out.notes.append("the hub closed before everything was written")
                break
        if case.get("fail_fast") and not early:
            out.grade = "NON-STRICT"
        ends_with_close = bool(expected) and expected[-1] != "E" and expected[-1][0] == "close"
        if not ends_with_close:
            conn.send(OP_PING, PROBE)
        deadline = time.monotonic() + timeout
        # Collect until the close (and the end of TCP) or the probe's pong.
        while True:
            remaining = deadline - time.monotonic()
            try:
                obs = conn.next_observation(max(0.01, remaining))
            except TimeoutError:
                seen.append(("timeout",))
                break
            if obs == ("pong", PROBE):
                break
            seen.append(obs)
            if obs[0] == "close":
                code = obs[1] if obs[1] is not None else 1000
                conn.send(OP_CLOSE, code.to_bytes(2, "big"))
                try:
                    end = conn.next_observation(3)
                except TimeoutError:
                    end = ("timeout",)
                if end[0] not in ("eof", "reset"):
                    seen.append(end)
                    seen.append(("not closed after the close frame",))
                elif end[0] == "reset":
                    out.notes.append("TCP reset after the close frame")
                break
            if obs[0] in ("eof", "reset", "bad"):
                break
        # Judge.
        ai = 0
        problems = []
        for k, item in enumerate(expected):
            if k >= len(seen):
                problems.append(f"missing {item!r} (#{k + 1} expected)")
                break
            ok, why = _matches(item, seen[k], answers, ai)
            if item == "E":
                ai += 1
            if not ok:
                problems.append(f"#{k + 1}: {why}; saw {_show(seen[k])}")
                break
        if not problems and len(seen) > len(expected):
            problems.append(f"unexpected after the expected frames: {', '.join(_show(o) for o in seen[len(expected):][:3])}")
        if not problems and not ends_with_close:
            # Still open: a clean close handshake must work.
            conn.send(OP_CLOSE, (1000).to_bytes(2, "big"))
            try:
                obs = conn.next_observation(3)
            except TimeoutError:
                obs = ("timeout",)
            if obs[0] != "close" or obs[1] != 1000:
                problems.append(f"the final close 1000 was answered with {_show(obs)}")
        out.passed = not problems
        if not out.passed:
            out.grade = "FAILED"
        if problems:
            out.detail = (f"case {case['id']} on /v1/{endpoint} ({case['desc']}): {problems[0]}; "
                          f"{len(answers)} complete messages sent; "
                          f"observed {len(seen)}: {', '.join(_show(o) for o in seen[:4])}")
        return out
    finally:
        conn.close()
        out.seconds = time.monotonic() - started


# ----------------------------------------------------------------------------------------------- handshake


def run_handshake(case: dict, endpoint: str, host: str, port: int) -> Outcome:
    """One case of cases/handshake.py: a raw HTTP request to the endpoint, its response head judged."""
    import socket

    from handshake import DEFAULT_HEADERS

    started = time.monotonic()
    out = Outcome(case["id"], endpoint, False)
    headers: list[tuple[str, str]] = []
    changes = case["headers"]
    for name, value in DEFAULT_HEADERS.items():
        if name in changes:
            value = changes[name]
        if value is not None:
            headers.append((name, value))
    for name, value in changes.items():
        if name.startswith("+"):
            headers.append((name[1:], value))
        elif name not in DEFAULT_HEADERS and value is not None:
            headers.append((name, value))
    request = f"{case['method']} {ENDPOINTS[endpoint]} {case['version']}\r\n"
    request += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    sock = socket.create_connection((host, port), timeout=5)
    try:
        sock.sendall(request.encode())
        data = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
        out.seconds = time.monotonic() - started
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    problems = []
    try:
        status = int(lines[0].split(" ")[1])
    except (IndexError, ValueError):
        status = None
    got = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            got.setdefault(k.strip().lower(), v.strip())
    if status not in case["status"]:
        problems.append(f"status {status}, expected {case['status']}")
    per_endpoint = case.get("endpoints", {}).get(endpoint, {})
    for name, value in {**case["has"], **per_endpoint.get("has", {})}.items():
        seen = got.get(name.lower())
        same = seen is not None and (seen.lower() == value.lower() if name in ("Upgrade", "Connection") else seen == value)
        if not same:
            problems.append(f"header {name}: {seen!r}, expected {value!r}")
    for name in case["lacks"] + per_endpoint.get("lacks", []):
        if name.lower() in got:
            problems.append(f"header {name} should be absent, got {got[name.lower()]!r}")
    out.passed = not problems
    if problems:
        out.grade = "FAILED"
        out.detail = (f"case {case['id']} on /v1/{endpoint} ({case['desc']}): {'; '.join(problems)}; "
                      f"response: {lines[0] if lines else data[:80]!r}")
    return out
