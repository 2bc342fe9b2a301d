"""A frame-level RFC 6455 client for the conformance suite: hand-built (masked) frames, writes chopped into
pieces of any size, and a reader that turns what the server sends into a list of observations.

Observations (tuples), in arrival order:
  ("text", bytes) / ("binary", bytes)   a complete data message (server fragments reassembled)
  ("pong", bytes)                       a pong and its payload
  ("close", code | None, reason bytes)  a close frame (code None: empty payload)
  ("eof",) / ("reset",)                 the TCP connection ended (FIN / RST)
  ("bad", why)                          something the server must never send (masked frame, bad close payload)
Server pings (heartbeats) are answered and not recorded.

Nothing here talks to anything but the hub on 127.0.0.1.
"""
from __future__ import annotations

import base64
import hashlib
import os
import select
import socket
import struct
import time

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def mask_bytes(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0, mask: bool = True) -> bytes:
    """One frame on the wire. `rsv` is the 3-bit RSV1..RSV3 field (4 = RSV1)."""
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    m = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        header = struct.pack("!BBH", b0, m | 126, n)
    else:
        header = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + mask_bytes(payload, key)


class FrameConn:
    """One upgraded socket at `path`."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str] | None = None,
                 timeout: float = 5):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed during the handshake: {self.buf!r}")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0] + b" ":
            raise ConnectionError(f"upgrade refused: {head!r}")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if accept not in head:
            raise ConnectionError("bad Sec-WebSocket-Accept")
        self.ended = False  # EOF or RST seen
        self.fragments: list[bytes] = []
        self.fragment_opcode: int | None = None

    # --- writing

    def write(self, data: bytes, chop: int | None = None, pause: float = 0.0) -> bool:
        """Writes `data`, in `chop`-byte pieces when given (each its own send; `pause` seconds between). False
        when the peer has already gone (the write failed). Sets `answered_early` when the server had sent
        something before the last piece went out (Autobahn's "fail fast" within a frame)."""
        self.answered_early = False
        try:
            if not chop:
                self.sock.sendall(data)
            else:
                for i in range(0, len(data), chop):
                    if i + chop < len(data) and pause and select.select([self.sock], [], [], 0)[0]:
                        self.answered_early = True
                    self.sock.sendall(data[i:i + chop])
                    if pause:
                        time.sleep(pause)
            return True
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            self.answered_early = True
            return False

    def send(self, opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0, mask: bool = True) -> bool:
        return self.write(frame(opcode, payload, fin, rsv, mask))

    # --- reading

    def _fill(self, n: int, deadline: float) -> bool:
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 18)
            except ConnectionResetError:
                self.ended = True
                raise
            if not chunk:
                self.ended = True
                return False
            self.buf += chunk
        return True

    def _take(self, n: int) -> bytes:
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def next_observation(self, timeout: float) -> tuple:
        """The next observation; raises TimeoutError when nothing complete arrives within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if not self._fill(2, deadline):
                    return ("eof",)
                b0, b1 = self.buf[0], self.buf[1]
                n, off = b1 & 0x7F, 2
                if n == 126:
                    if not self._fill(4, deadline):
                        return ("eof",)
                    (n,) = struct.unpack("!H", self.buf[2:4])
                    off = 4
                elif n == 127:
                    if not self._fill(10, deadline):
                        return ("eof",)
                    (n,) = struct.unpack("!Q", self.buf[2:10])
                    off = 10
                if b1 & 0x80:
                    off += 4
                if not self._fill(off + n, deadline):
                    return ("eof",)
            except ConnectionResetError:
                return ("reset",)
            self._take(off)
            payload = self._take(n)
            fin, opcode, rsv = bool(b0 & 0x80), b0 & 0x0F, (b0 >> 4) & 7
            if b1 & 0x80:
                return ("bad", f"masked server frame (opcode {opcode})")
            if rsv:
                return ("bad", f"server frame with RSV bits {rsv} (opcode {opcode})")
            if opcode == OP_PING:
                self.send(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                return ("pong", payload)
            if opcode == OP_CLOSE:
                if len(payload) == 0:
                    return ("close", None, b"")
                if len(payload) == 1:
                    return ("bad", f"one-byte close payload {payload!r}")
                return ("close", struct.unpack("!H", payload[:2])[0], payload[2:])
            if opcode in (OP_TEXT, OP_BINARY):
                if self.fragment_opcode is not None:
                    return ("bad", "new server message inside a fragmented one")
                if fin:
                    return ("text" if opcode == OP_TEXT else "binary", payload)
                self.fragment_opcode, self.fragments = opcode, [payload]
                continue
            if opcode == OP_CONT:
                if self.fragment_opcode is None:
                    return ("bad", "server continuation without a message")
                self.fragments.append(payload)
                if fin:
                    kind = "text" if self.fragment_opcode == OP_TEXT else "binary"
                    data = b"".join(self.fragments)
                    self.fragment_opcode, self.fragments = None, []
                    return (kind, data)
                continue
            return ("bad", f"server frame with reserved opcode {opcode}")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
