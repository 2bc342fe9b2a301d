"""permessage-deflate (RFC 7692) on /v1/socket: negotiation with real clients (python `websockets`' extension, and a raw
client that offers what the hub must refuse), compressed round trips, RSV1 rules, the zip-bomb limit, the memory
budget (client_no_context_takeover past it), EXAMHUB_COMPRESSION=off, and which channel kinds get compressed events.
"""
from __future__ import annotations

import json
import re
import struct
import time
import zlib

import pytest

from examkit import create_exam, join, save_ok
from hubclient import Client, RawWS, _CONNECT_KW, _ws_connect


def extension_header(head: bytes) -> str | None:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-extensions":
            return value.strip()
    return None


class DeflateWS(RawWS):
    """A raw client speaking permessage-deflate itself (zlib), so a test sees RSV1 and the bytes on the wire."""

    def __init__(self, hub, offer: str, context_takeover: bool = True, headers: dict | None = None):
        super().__init__(hub.host, hub.port, headers={"Sec-WebSocket-Extensions": offer, **(headers or {})})
        self.agreed = extension_header(self.head)
        params = dict(re.findall(r"(\w+)(?:=(\d+))?", self.agreed or ""))
        self.bits = max(int(params.get("client_max_window_bits") or 15), 9)
        self.client_no_context = "client_no_context_takeover" in params or not context_takeover
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, -self.bits)
        self.inflater = zlib.decompressobj(-15)
        self.compressed_in = 0

    def send_compressed(self, message: dict | str | bytes) -> int:
        data = json.dumps(message).encode() if isinstance(message, dict) else (
            message.encode() if isinstance(message, str) else message)
        body = self.compressor.compress(data) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        assert body.endswith(b"\x00\x00\xff\xff")
        body = body[:-4]
        if self.client_no_context:
            self.compressor = zlib.compressobj(6, zlib.DEFLATED, -self.bits)
        self.send_frame(0x1, body, rsv=4)
        return len(body)

    def recv_message(self, timeout: float = 5) -> tuple[bool, dict]:
        """The next text message, inflated when RSV1 is set; (was it compressed, parsed JSON)."""
        deadline = time.monotonic() + timeout
        while True:
            b0, b1 = self._read(2, deadline)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2, deadline))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8, deadline))
            payload = self._read(n, deadline)
            opcode, rsv = b0 & 0x0F, (b0 >> 4) & 7
            assert rsv in (0, 4), f"server frame with RSV bits {rsv}"
            if opcode == 0x9:
                assert rsv == 0
                self.send_frame(0xA, payload)
                continue
            assert opcode == 0x1 and b0 & 0x80, (opcode, payload[:80])
            if rsv == 4:
                self.compressed_in += 1
                # The server keeps no context: a fresh inflater per message works (and proves it).
                payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
            return rsv == 4, json.loads(payload)

    def request(self, op: str, rid: int, compressed: bool = True, **fields) -> dict:
        msg = {"op": op, "id": rid, **fields}
        if compressed:
            self.send_compressed(msg)
        else:
            self.send_text(json.dumps(msg))
        while True:
            _, frame = self.recv_message()
            if frame.get("op") == "reply" and frame.get("id") == rid:
                return frame


def metric(hub, direction: str, form: str) -> int:
    _, _, body = hub.http("GET", "/metrics")
    m = re.search(rf'examhub_compression_bytes_total\{{[^}}]*direction="{direction}"[^}}]*form="{form}"[^}}]*\}} (\d+)',
                  body.decode())
    if m is None:
        m = re.search(rf'examhub_compression_bytes_total\{{[^}}]*form="{form}"[^}}]*direction="{direction}"[^}}]*\}} (\d+)',
                      body.decode())
    return int(m.group(1)) if m else 0


def test_python_websockets_negotiates_and_round_trips_ops(hub):
    exam = create_exam(hub)
    ws = _ws_connect(hub.url(), subprotocols=["examhub.v1.json"], compression="deflate", open_timeout=5,
                     close_timeout=3, ping_interval=None, **_CONNECT_KW)
    c = Client(ws, label="deflate")
    try:
        agreed = ws.response.headers.get("Sec-WebSocket-Extensions")
        assert agreed and agreed.startswith("permessage-deflate; server_no_context_takeover"), agreed
        in_wire, in_raw = metric(hub, "in", "wire"), metric(hub, "in", "raw")
        c.hello(hub.token("candidate", "u-deflate", "t1"))
        c.ping()
        attempt = join(c, exam["id"])
        text = "The derivative of x squared is two x, because the limit of the difference quotient " * 6
        for i in range(5):
            saved = save_ok(c, attempt["attemptId"], "q-text", text + str(i))
            assert saved["version"] == i + 1
        # The hub inflated what the client compressed: fewer bytes on the wire than in the messages.
        wire, raw = metric(hub, "in", "wire") - in_wire, metric(hub, "in", "raw") - in_raw
        assert raw > 2500 and wire < raw / 4, (wire, raw)
    finally:
        c.close()


def test_offers_the_hub_cannot_honour_get_a_handshake_without_the_extension(hub):
    token = hub.token("proctor", "p-raw", "t1")
    for offer in ["permessage-deflate; server_max_window_bits=8",
                  "permessage-deflate; no_such_param, permessage-deflate; client_max_window_bits=99",
                  "permessage-deflate; server_no_context_takeover=yes",
                  'permessage-deflate; client_max_window_bits="unterminated',
                  "x-webkit-deflate-frame"]:
        raw = DeflateWS(hub, offer)
        try:
            assert raw.agreed is None, (offer, raw.agreed)
            raw.send_text(json.dumps({"op": "hello", "id": 1, "token": token}))
            assert raw.reply(1)["ok"] is True
            raw.send_text(json.dumps({"op": "ping", "id": 2}))
            assert raw.reply(2)["ok"] is True
            # Compression was not agreed: RSV1 is a protocol error.
            raw.send_frame(0x1, zlib.compress(b'{"op":"ping","id":3}')[2:-4], rsv=4)
            raw.expect_close(1002)
        finally:
            raw.close()


def test_an_unusable_offer_falls_back_to_the_next(hub):
    raw = DeflateWS(hub, "permessage-deflate; server_max_window_bits=8; client_max_window_bits, "
                         "permessage-deflate; server_max_window_bits=10")
    try:
        assert raw.agreed == "permessage-deflate; server_no_context_takeover; server_max_window_bits=10", raw.agreed
        reply = raw.request("hello", 1, token=hub.token("proctor", "p-fallback", "t1"))
        assert reply["ok"] is True
        assert raw.request("ping", 2)["ok"] is True
        assert raw.request("ping", 3, compressed=False)["ok"] is True  # uncompressed messages stay fine
    finally:
        raw.close()


def test_large_replies_are_compressed_small_ones_are_not(hub):
    exam = create_exam(hub, qs=[{"id": f"q{i}", "type": "text", "prompt": f"Describe step {i} of the proof in detail"}
                                for i in range(20)])
    raw = DeflateWS(hub, "permessage-deflate; client_max_window_bits")
    try:
        assert raw.request("hello", 1, token=hub.token("candidate", "u-big", "t1"))["ok"] is True
        raw.send_compressed({"op": "ping", "id": 2})
        compressed, reply = raw.recv_message()
        assert reply["id"] == 2 and not compressed  # under EXAMHUB_COMPRESSION_MIN_BYTES
        raw.send_compressed({"op": "attempt.join", "id": 3, "examId": exam["id"]})
        compressed, reply = raw.recv_message()
        assert reply["id"] == 3 and reply["ok"] is True and compressed  # the exam's questions: over 1 KiB
        assert len(reply["data"]["questions"]) == 20
    finally:
        raw.close()


def test_a_compressed_bomb_closes_1009(start_hub):
    hub = start_hub({"EXAMHUB_MAX_MESSAGE_BYTES": "65536"})
    raw = DeflateWS(hub, "permessage-deflate")
    try:
        assert raw.request("hello", 1, token=hub.token("proctor", "p-bomb", "t1"))["ok"] is True
        # 64 MiB of spaces inflate from about 64 KiB... keep it small on the wire: 8 MiB -> ~8 KiB.
        sent = raw.send_compressed(b" " * (8 << 20))
        assert sent < 65536
        raw.expect_close(1009)
    finally:
        raw.close()
    assert hub.running


def test_corrupt_compressed_data_closes_1007(hub):
    raw = DeflateWS(hub, "permessage-deflate")
    try:
        assert raw.request("hello", 1, token=hub.token("proctor", "p-corrupt", "t1"))["ok"] is True
        raw.send_frame(0x1, b"\xff\xee\xdd\xcc", rsv=4)
        raw.expect_close(1007)
    finally:
        raw.close()


def test_rsv1_on_a_continuation_or_control_frame_is_1002(hub):
    for frames in ([(0x1, b'{"op":', False, 0), (0x0, b'"ping"}', True, 4)], [(0x9, b"x", True, 4)]):
        raw = DeflateWS(hub, "permessage-deflate")
        try:
            assert raw.agreed
            for opcode, payload, fin, rsv in frames:
                raw.send_frame(opcode, payload, fin=fin, rsv=rsv)
            raw.expect_close(1002)
        finally:
            raw.close()


def test_past_the_memory_budget_clients_are_asked_not_to_keep_context(start_hub):
    hub = start_hub({"EXAMHUB_COMPRESSION_MEMORY_MB": "0"})
    raw = DeflateWS(hub, "permessage-deflate; client_max_window_bits")
    try:
        assert "client_no_context_takeover" in raw.agreed, raw.agreed
        assert raw.request("hello", 1, token=hub.token("proctor", "p-budget", "t1"))["ok"] is True
        for i in range(2, 6):
            assert raw.request("ping", i)["ok"] is True
    finally:
        raw.close()
    # python websockets honours the response.
    ws = _ws_connect(hub.url(), compression="deflate", open_timeout=5, close_timeout=3, ping_interval=None,
                     **_CONNECT_KW)
    c = Client(ws, label="budget")
    try:
        assert "client_no_context_takeover" in ws.response.headers["Sec-WebSocket-Extensions"]
        c.hello(hub.token("proctor", "p-budget-2", "t1"))
        c.ping()
    finally:
        c.close()


def test_compression_off_never_negotiates(start_hub):
    hub = start_hub({"EXAMHUB_COMPRESSION": "off"})
    raw = DeflateWS(hub, "permessage-deflate; client_max_window_bits")
    try:
        assert raw.agreed is None
    finally:
        raw.close()


def test_event_compression_follows_the_channel_kinds(start_hub):
    """Only kinds in EXAMHUB_COMPRESSION_CHANNELS get compressed events; both sockets read the same events."""
    for kinds, expect_compressed in (("exam", True), ("attempt,chat", False)):
        hub = start_hub({"EXAMHUB_COMPRESSION_CHANNELS": kinds, "EXAMHUB_COMPRESSION_MIN_BYTES": "64"})
        exam_id = "e-kinds"
        watchers = []
        try:
            for i in range(2):
                w = DeflateWS(hub, "permessage-deflate")
                assert w.request("hello", 1, token=hub.token("proctor", f"p{i}", "t1", exams=[exam_id]))["ok"] is True
                assert w.request("subscribe", 2, ch=f"exam:{exam_id}:proctor")["ok"] is True
                watchers.append(w)
            admin = DeflateWS(hub, "permessage-deflate")
            watchers.append(admin)
            assert admin.request("hello", 1, token=hub.token("admin", "a1", "t1"))["ok"] is True
            note = "candidate looked away from the screen for a while; " * 10
            r = admin.request("publish", 2, ch=f"exam:{exam_id}:proctor", type="note", data={"note": note})
            assert r["ok"] is True, r
            for w in watchers[:2]:
                compressed, event = w.recv_message()
                assert event["op"] == "event" and event["data"]["note"] == note
                assert compressed is expect_compressed, kinds
        finally:
            for w in watchers:
                w.close()
