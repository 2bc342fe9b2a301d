"""The WebSocket conformance cases, as data: Autobahn|Testsuite's sections 1-7, 9 and 10, re-expressed for a
frame-level client (RFC 6455 is the judge; where Autobahn accepts an alternative, so do we).

Each case is a dict:
  id       Autobahn's case number ("6.3.1"); cases Autobahn does not have end in "x" ("1.1.9x")
  desc     what it checks
  steps    what to send, in order:
             {"frame": opcode, "data": bytes, "fin": bool, "rsv": 0-7, "mask": bool, "wrap": bool}
             {"message": "text"|"binary", "size": n, "piece": k}   a whole message of n bytes in k-byte fragments
             {"sleep": seconds}
  expect   what the server must send, in order:
             "E"                   the answer to the next message the client completed: on /v1/echo the same
                                   message back; on /v1/socket the protocol's answer (see runner.py)
             ("pong", bytes)       a pong with that payload
             ("close", [codes])    a close frame with one of the codes (None: an empty close payload), then
                                   the end of the TCP connection; nothing may follow it
           When `expect` does not end with a close, the connection must stay open: the runner sends a probe
           ping, expects its pong right after everything listed, then closes with 1000 and expects 1000 back.
  chop     write the frames in pieces of this many bytes (each its own send), `pause` seconds apart
  timeout  seconds to wait for the server (default 5)
  fail_fast   graded NON-STRICT (still a pass, as Autobahn does) when the server answered only after the
           whole chopped frame had been written
  socket_expect   what /v1/socket must send instead, when it differs; by default the same as `expect`, except
           that a case whose first message is binary expects close 1003 (binary refused) on /v1/socket

On /v1/socket a text message is wrapped into a ping op ({"op":"ping","id":K,"x":"<payload>"}) when its bytes
can sit in a JSON string as they are, so framing and UTF-8 cases exercise the real protocol path; a message
that cannot be wrapped (control bytes, quotes), or a frame with "wrap": false, is sent as is. `size` messages
keep their total size on both endpoints.
"""
from __future__ import annotations

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 262_144  # EXAMHUB_MAX_MESSAGE_BYTES default


def F(opcode: int, data: bytes = b"", fin: bool = True, rsv: int = 0, mask: bool = True, wrap: bool = True) -> dict:
    return {"frame": opcode, "data": data, "fin": fin, "rsv": rsv, "mask": mask, "wrap": wrap}


def M(size: int, piece: int | None = None, binary: bool = False) -> dict:
    return {"message": "binary" if binary else "text", "size": size, "piece": piece}


def S(seconds: float) -> dict:
    return {"sleep": seconds}


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def C(*codes) -> tuple:
    return ("close", list(codes))


def P(data: bytes) -> tuple:
    return ("pong", data)


E = "E"
CASES: list[dict] = []


def case(id: str, desc: str, steps: list, expect: list, **kw) -> None:
    CASES.append({"id": id, "desc": desc, "steps": steps, "expect": expect, **kw})


# ------------------------------------------------------------------------------------------- 1 framing

SIZES = [0, 125, 126, 127, 128, 65535, 65536]
for i, n in enumerate(SIZES, 1):
    case(f"1.1.{i}", f"text message of {n} bytes", [M(n)], [E])
case("1.1.8", "text message of 65536 bytes, written in 997-byte chops", [M(65536)], [E], chop=997)
case("1.1.9x", "text message of 200 bytes, frame written one byte per send", [M(200)], [E], chop=1, pause=0.0005)
for i, n in enumerate(SIZES, 1):
    case(f"1.2.{i}", f"binary message of {n} bytes", [M(n, binary=True)], [E])
case("1.2.8", "binary message of 65536 bytes, written in 997-byte chops", [M(65536, binary=True)], [E], chop=997)

# ------------------------------------------------------------------------------------------- 2 pings and pongs

case("2.1", "ping without payload", [F(PING)], [P(b"")])
case("2.2", "ping with a small text payload", [F(PING, b"Hello, world!")], [P(b"Hello, world!")])
case("2.3", "ping with a small binary payload", [F(PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")],
     [P(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")])
case("2.4", "ping with a 125-byte payload", [F(PING, b"\xfe" * 125)], [P(b"\xfe" * 125)])
case("2.5", "ping with a 126-byte payload: protocol error", [F(PING, b"\xfe" * 126)], [C(1002)])
case("2.6", "ping with a 125-byte payload, written in 25-byte chops", [F(PING, b"\xfe" * 125)], [P(b"\xfe" * 125)],
     chop=25, pause=0.001)
case("2.7", "unsolicited pong without payload: ignored", [F(PONG)], [])
case("2.8", "unsolicited pong with payload: ignored", [F(PONG, b"unsolicited pong payload")], [])
case("2.9", "unsolicited pong, then a ping: only the ping is answered",
     [F(PONG, b"unsolicited pong payload"), F(PING, b"ping payload")], [P(b"ping payload")])
case("2.10", "10 pings in one write: all answered, in order",
     [F(PING, f"payload-{i}".encode()) for i in range(10)], [P(f"payload-{i}".encode()) for i in range(10)])
case("2.11", "10 pings, chopped into 1-byte writes: all answered",
     [F(PING, f"payload-{i}".encode()) for i in range(10)], [P(f"payload-{i}".encode()) for i in range(10)],
     chop=1, pause=0.0002)
case("2.12x", "ping flood: 1000 pings in one write, all answered in order",
     [F(PING, f"{i}".encode()) for i in range(1000)], [P(f"{i}".encode()) for i in range(1000)], timeout=15)

# ------------------------------------------------------------------------------------------- 3 reserved bits

case("3.1", "text frame with RSV1 (no extension negotiated)", [F(TEXT, b"Hello, world!", rsv=4)], [C(1002)])
case("3.2", "text, then text with RSV2, then ping: the first is echoed, then close",
     [F(TEXT, b"Hello, world!"), F(TEXT, b"Hello, world!", rsv=2), F(PING, b"p")], [E, C(1002)])
case("3.3", "as 3.2 with RSV3, written in 1-byte chops",
     [F(TEXT, b"Hello, world!"), F(TEXT, b"Hello, world!", rsv=3), F(PING, b"p")], [E, C(1002)],
     chop=1, pause=0.0005)
case("3.4", "as 3.2 with RSV1+RSV2+RSV3 (4+2+1) on the second text, chopped in 4-byte writes",
     [F(TEXT, b"Hello, world!"), F(TEXT, b"Hello, world!", rsv=7), F(PING, b"p")], [E, C(1002)], chop=4)
case("3.5", "binary frame with RSV1+RSV3", [F(BINARY, b"\x00\xff\xfe", rsv=5)], [C(1002)])
case("3.6", "ping with RSV2+RSV3", [F(PING, b"Hello, world!", rsv=3)], [C(1002)])
case("3.7", "close with RSV1+RSV2+RSV3", [F(CLOSE, close_payload(1000), rsv=7)], [C(1002)])

# ------------------------------------------------------------------------------------------- 4 opcodes

for i, op in enumerate([3, 4, 5, 6, 7], 1):
    steps = [F(op)] if i % 2 else [F(TEXT, b"Hello, world!"), F(op, b"reserved payload"), F(PING, b"p")]
    case(f"4.1.{i}", f"reserved non-control opcode {op}" + ("" if i % 2 else " after an echo, then a ping"),
         steps, [C(1002)] if i % 2 else [E, C(1002)], **({"chop": 1, "pause": 0.0005} if i == 5 else {}))
for i, op in enumerate([11, 12, 13, 14, 15], 1):
    steps = [F(op)] if i % 2 else [F(TEXT, b"Hello, world!"), F(op, b"reserved payload"), F(PING, b"p")]
    case(f"4.2.{i}", f"reserved control opcode {op}" + ("" if i % 2 else " after an echo, then a ping"),
         steps, [C(1002)] if i % 2 else [E, C(1002)], **({"chop": 1, "pause": 0.0005} if i == 5 else {}))
case("4.3.1x", "unmasked client text frame", [F(TEXT, b"Hello, world!", mask=False)], [C(1002)])
case("4.3.2x", "unmasked client ping", [F(PING, b"x", mask=False)], [C(1002)])

# ------------------------------------------------------------------------------------------- 5 fragmentation

case("5.1", "ping fragmented into 2 frames", [F(PING, b"frag-1", fin=False), F(CONT, b"frag-2")], [C(1002)])
case("5.2", "pong fragmented into 2 frames", [F(PONG, b"frag-1", fin=False), F(CONT, b"frag-2")], [C(1002)])
case("5.3", "text message in 2 fragments", [F(TEXT, b"fragment1", fin=False), F(CONT, b"fragment2")], [E])
case("5.4", "text message in 2 fragments, a pause between them",
     [F(TEXT, b"fragment1", fin=False), S(0.1), F(CONT, b"fragment2")], [E])
case("5.5", "text message in 2 fragments, written in 1-byte chops",
     [F(TEXT, b"fragment1", fin=False), F(CONT, b"fragment2")], [E], chop=1, pause=0.0005)
case("5.6", "text in 2 fragments with a ping between them: pong, then the message",
     [F(TEXT, b"fragment1", fin=False), F(PING, b"pongme!"), F(CONT, b"fragment2")], [P(b"pongme!"), E])
case("5.7", "as 5.6, written in 1-byte chops",
     [F(TEXT, b"fragment1", fin=False), F(PING, b"pongme!"), F(CONT, b"fragment2")], [P(b"pongme!"), E],
     chop=1, pause=0.0005)
case("5.8", "as 5.6, with pauses between the frames",
     [F(TEXT, b"fragment1", fin=False), S(0.05), F(PING, b"pongme!"), S(0.05), F(CONT, b"fragment2")],
     [P(b"pongme!"), E])
case("5.9", "continuation (FIN) with nothing to continue, then text",
     [F(CONT, b"non-continuation payload"), F(TEXT, b"Hello, world!")], [C(1002)])
case("5.10", "as 5.9, written in 1-byte chops", [F(CONT, b"non-continuation payload"), F(TEXT, b"Hello, world!")],
     [C(1002)], chop=1, pause=0.0005)
case("5.11", "as 5.9, with a pause between the frames",
     [F(CONT, b"non-continuation payload"), S(0.05), F(TEXT, b"Hello, world!")], [C(1002)])
case("5.12", "continuation (no FIN) with nothing to continue, then text",
     [F(CONT, b"non-continuation payload", fin=False), F(TEXT, b"Hello, world!")], [C(1002)])
case("5.13", "as 5.12, written in 1-byte chops",
     [F(CONT, b"non-continuation payload", fin=False), F(TEXT, b"Hello, world!")], [C(1002)], chop=1,
     pause=0.0005)
case("5.14", "as 5.12, with a pause between the frames",
     [F(CONT, b"non-continuation payload", fin=False), S(0.05), F(TEXT, b"Hello, world!")], [C(1002)])
case("5.15", "a whole fragmented message, then a continuation with nothing to continue",
     [F(TEXT, b"fragment1", fin=False), F(CONT, b"fragment2"), F(CONT, b"fragment3", fin=False),
      F(TEXT, b"fragment4")], [E, C(1002)])
case("5.16", "continuation, text start, continuation end (twice): protocol error on the first frame",
     [F(CONT, b"fragment1", fin=False), F(TEXT, b"fragment2", fin=False), F(CONT, b"fragment3")] * 2, [C(1002)])
case("5.17", "as 5.16, with FIN on the first continuation",
     [F(CONT, b"fragment1"), F(TEXT, b"fragment2", fin=False), F(CONT, b"fragment3")] * 2, [C(1002)])
case("5.18", "new text message while a fragmented one is open",
     [F(TEXT, b"fragment1", fin=False), F(TEXT, b"fragment2")], [C(1002)])
case("5.19", "text in 5 fragments with 2 pings between them, with pauses: pongs, then the message",
     [F(TEXT, b"fragment1", fin=False), F(CONT, b"fragment2", fin=False), F(PING, b"pongme 1!"), S(0.05),
      F(CONT, b"fragment3", fin=False), S(0.05), F(CONT, b"fragment4", fin=False), F(PING, b"pongme 2!"),
      F(CONT, b"fragment5")], [P(b"pongme 1!"), P(b"pongme 2!"), E])
case("5.20", "as 5.19, written in 3-byte chops",
     [F(TEXT, b"fragment1", fin=False), F(CONT, b"fragment2", fin=False), F(PING, b"pongme 1!"),
      F(CONT, b"fragment3", fin=False), F(CONT, b"fragment4", fin=False), F(PING, b"pongme 2!"),
      F(CONT, b"fragment5")], [P(b"pongme 1!"), P(b"pongme 2!"), E], chop=3)
case("5.21x", "fragmented text with zero-length pieces (empty first, middle and last fragments)",
     [F(TEXT, b"", fin=False), F(CONT, b"abc", fin=False), F(CONT, b"", fin=False), F(CONT, b"def", fin=False),
      F(CONT, b"")], [E])
case("5.22x", "binary in 3 fragments", [F(BINARY, b"\x00\x01", fin=False), F(CONT, b"\x02", fin=False),
                                        F(CONT, b"\xff")], [E])
case("5.23x", "a pong and a close-free mix between fragments: pong ignored, ping answered",
     [F(TEXT, b"frag", fin=False), F(PONG, b"x"), F(PING, b"y"), F(CONT, b"ment")], [P(b"y"), E])

# ------------------------------------------------------------------------------------------- 6 UTF-8


def utf8_case(id: str, desc: str, payload: bytes) -> None:
    """One text frame with `payload`: echoed when it is valid UTF-8, else close 1007."""
    try:
        payload.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    case(id, f"{'valid' if valid else 'invalid'} UTF-8: {desc} {payload.hex(' ') if len(payload) < 40 else ''}",
         [F(TEXT, payload)], [E] if valid else [C(1007)])


KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"  # κόσμε
HELLO_UTF8 = "Hello-µ@ßöäüàá-UTF-8!!".encode()

case("6.1.1", "empty text message", [F(TEXT, b"")], [E])
case("6.1.2", "text message of 3 empty fragments", [F(TEXT, b"", fin=False), F(CONT, b"", fin=False), F(CONT, b"")],
     [E])
case("6.1.3", "empty, non-empty, empty fragments",
     [F(TEXT, b"", fin=False), F(CONT, b"middle frame payload", fin=False), F(CONT, b"")], [E])
utf8_case("6.2.1", "multi-byte text in one frame", HELLO_UTF8)
case("6.2.2", "multi-byte text in 2 fragments split at a character boundary",
     [F(TEXT, HELLO_UTF8[:7], fin=False), F(CONT, HELLO_UTF8[7:])], [E])
case("6.2.3", "multi-byte text in 1-byte fragments (sequences split across fragments)",
     [F(TEXT if i == 0 else CONT, HELLO_UTF8[i:i + 1], fin=i == len(HELLO_UTF8) - 1)
      for i in range(len(HELLO_UTF8))], [E])
case("6.2.4", "κόσμε in 1-byte fragments",
     [F(TEXT if i == 0 else CONT, KOSME[i:i + 1], fin=i == len(KOSME) - 1) for i in range(len(KOSME))], [E])
BAD_SURROGATE = KOSME + b"\xed\xa0\x80edited"
utf8_case("6.3.1", "a surrogate inside text", BAD_SURROGATE)
case("6.3.2", "as 6.3.1 in 1-byte fragments: close at the bad byte",
     [F(TEXT if i == 0 else CONT, BAD_SURROGATE[i:i + 1], fin=i == len(BAD_SURROGATE) - 1)
      for i in range(len(BAD_SURROGATE))], [C(1007)])
# 6.4: fail fast. Only the frames up to the invalid one are sent: a server that validated only whole messages
# would never answer, and the case times out.
case("6.4.1", "fail fast: fragment 1 valid, fragment 2 holds U+110000 (rest never sent)",
     [F(TEXT, KOSME, fin=False), F(CONT, b"\xf4\x90\x80\x80", fin=False)], [C(1007)])
case("6.4.2", "fail fast: the invalid sequence split across fragments (rest never sent)",
     [F(TEXT, KOSME + b"\xf4", fin=False), F(CONT, b"\x90", fin=False)], [C(1007)])
case("6.4.3", "invalid sequence in one frame written in chops with pauses (close after the frame: non-strict)",
     [F(TEXT, KOSME + b"\xf4\x90\x80\x80" + b"edited")], [C(1007)], chop=4, pause=0.05, fail_fast=True)
case("6.4.4", "as 6.4.3 with 1-byte chops", [F(TEXT, KOSME + b"\xf4\x90\x80\x80" + b"edited")], [C(1007)], chop=1,
     pause=0.01, fail_fast=True)
case("6.4.5x", "fail fast: first fragment ends in a truncated sequence followed by an ASCII fragment",
     [F(TEXT, KOSME + b"\xe2\x82", fin=False), F(CONT, b"(", fin=False)], [C(1007)])
case("6.4.6x", "valid sequence split 1|3 across fragments", [F(TEXT, b"a\xf0", fin=False), F(CONT, b"\x9f\x98\x80z")],
     [E])
case("6.4.7x", "valid 3-byte sequence split 2|1 across fragments, with a ping between",
     [F(TEXT, b"x\xe2\x82", fin=False), F(PING, b"mid"), F(CONT, b"\xacy")], [P(b"mid"), E])
case("6.4.8x", "message ends inside a sequence (fragmented, last fragment empty)",
     [F(TEXT, b"abc\xe2\x82", fin=False, wrap=False), F(CONT, b"", wrap=False)], [C(1007)])
case("6.4.9x", "message ends inside a 4-byte sequence (one frame, not wrapped on /v1/socket)",
     [F(TEXT, b"abc\xf0\x9f\x98", wrap=False)], [C(1007)])
case("6.4.10x", "message ends inside a 2-byte sequence (one frame, not wrapped on /v1/socket)",
     [F(TEXT, b"\xce", wrap=False)], [C(1007)])

utf8_case("6.5.1", "κόσμε", KOSME)
for i in range(1, len(KOSME) + 1):  # 6.6: κόσμε cut after each byte
    utf8_case(f"6.6.{i}", f"κόσμε cut after {i} bytes", KOSME[:i])
for i, s in enumerate([b"\x00", b"\xc2\x80", b"\xe0\xa0\x80", b"\xf0\x90\x80\x80"], 1):
    utf8_case(f"6.7.{i}", "first possible sequence of its length", s)
for i, s in enumerate([b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80"], 1):
    utf8_case(f"6.8.{i}", "first possible 5/6-byte sequence", s)
for i, s in enumerate([b"\x7f", b"\xdf\xbf", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf"], 1):
    utf8_case(f"6.9.{i}", "last possible sequence of its length", s)
for i, s in enumerate([b"\xf7\xbf\xbf\xbf", b"\xfb\xbf\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf\xbf"], 1):
    utf8_case(f"6.10.{i}", "last possible 4/5/6-byte pattern (out of range)", s)
for i, s in enumerate([b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xef\xbf\xbd", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80"], 1):
    utf8_case(f"6.11.{i}", "other boundary condition", s)
for i, s in enumerate([b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80", b"\x80\xbf\x80\xbf", b"\x80\xbf\x80\xbf\x80",
                       b"\x80\xbf\x80\xbf\x80\xbf", bytes(range(0x80, 0xC0))], 1):
    utf8_case(f"6.12.{i}", "unexpected continuation bytes", s)
for i, (lo, hi) in enumerate([(0xC0, 0xDF), (0xE0, 0xEF), (0xF0, 0xF7), (0xF8, 0xFB), (0xFC, 0xFD)], 1):
    utf8_case(f"6.13.{i}", f"lonely start bytes {lo:#x}-{hi:#x}, each followed by a space",
              b"".join(bytes([b, 0x20]) for b in range(lo, hi + 1)))
INCOMPLETE = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80", b"\xdf", b"\xef\xbf",
              b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
for i, s in enumerate(INCOMPLETE, 1):
    utf8_case(f"6.14.{i}", "sequence with its last continuation byte missing", s)
utf8_case("6.15.1", "concatenation of incomplete sequences", b"".join(INCOMPLETE))
for i, s in enumerate([b"\xfe", b"\xff", b"\xfe\xfe\xff\xff"], 1):
    utf8_case(f"6.16.{i}", "impossible bytes", s)
for i, s in enumerate([b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xf8\x80\x80\x80\xaf",
                       b"\xfc\x80\x80\x80\x80\xaf"], 1):
    utf8_case(f"6.17.{i}", "overlong '/'", s)
for i, s in enumerate([b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf", b"\xf8\x87\xbf\xbf\xbf",
                       b"\xfc\x83\xbf\xbf\xbf\xbf"], 1):
    utf8_case(f"6.18.{i}", "maximum overlong sequence", s)
for i, s in enumerate([b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xf8\x80\x80\x80\x80",
                       b"\xfc\x80\x80\x80\x80\x80"], 1):
    utf8_case(f"6.19.{i}", "overlong NUL", s)
for i, s in enumerate([b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf", b"\xed\xb0\x80",
                       b"\xed\xbe\x80", b"\xed\xbf\xbf"], 1):
    utf8_case(f"6.20.{i}", "single UTF-16 surrogate", s)
for i, s in enumerate([b"\xed\xa0\x80\xed\xb0\x80", b"\xed\xa0\x80\xed\xbf\xbf", b"\xed\xad\xbf\xed\xb0\x80",
                       b"\xed\xad\xbf\xed\xbf\xbf", b"\xed\xae\x80\xed\xb0\x80", b"\xed\xae\x80\xed\xbf\xbf",
                       b"\xed\xaf\xbf\xed\xb0\x80", b"\xed\xaf\xbf\xed\xbf\xbf"], 1):
    utf8_case(f"6.21.{i}", "paired UTF-16 surrogates", s)
NONCHARS = [b"\xef\xbf\xbe", b"\xef\xbf\xbf"] + [chr(plane * 0x10000 + low).encode()
                                                 for plane in range(1, 17) for low in (0xFFFE, 0xFFFF)]
for i, s in enumerate(NONCHARS, 1):
    utf8_case(f"6.22.{i}", "noncharacter (valid UTF-8)", s)
for i, s in enumerate([b"\xef\xbf\xb9", b"\xef\xbf\xba", b"\xef\xbf\xbb", b"\xef\xbf\xbc", b"\xef\xbf\xbd",
                       b"\x61\xef\xbf\xbd\x62", b"\xf0\x9f\x98\x80" * 10], 1):
    utf8_case(f"6.23.{i}", "specials and emoji", s)

# ------------------------------------------------------------------------------------------- 7 close handling

case("7.1.1", "a message, then a normal close: echo, then close 1000",
     [F(TEXT, b"Hello World!"), F(CLOSE, close_payload(1000))], [E, C(1000)])
case("7.1.2", "two close frames: the second is ignored", [F(CLOSE, close_payload(1000)), F(CLOSE, close_payload(1000))],
     [C(1000)])
case("7.1.3", "close, then a ping: no pong", [F(CLOSE, close_payload(1000)), F(PING, b"Hello World!")], [C(1000)])
case("7.1.4", "close, then a text message: not answered", [F(CLOSE, close_payload(1000)), F(TEXT, b"Hello World!")],
     [C(1000)])
case("7.1.5", "fragment 1, close, fragment 2: the message is not answered",
     [F(TEXT, b"fragment1", fin=False), F(CLOSE, close_payload(1000)), F(CONT, b"fragment2")], [C(1000)])
case("7.1.6", "a 64 KiB message, a close, a ping: echo, close, no pong",
     [M(65536), F(CLOSE, close_payload(1000)), F(PING, b"after close")], [E, C(1000)])
case("7.3.1", "close without payload: answered with 1000 or an empty close", [F(CLOSE, b"")], [C(1000, None)])
case("7.3.2", "close with a 1-byte payload", [F(CLOSE, b"\x03")], [C(1002)])
case("7.3.3", "close with code 1000 only", [F(CLOSE, close_payload(1000))], [C(1000)])
case("7.3.4", "close with code 1000 and a reason", [F(CLOSE, close_payload(1000, b"Hello World!"))], [C(1000)])
case("7.3.5", "close with code 1000 and a 123-byte reason (125-byte payload)",
     [F(CLOSE, close_payload(1000, b"*" * 123))], [C(1000)])
case("7.3.6", "close with code 1000 and a 124-byte reason (126-byte payload)",
     [F(CLOSE, close_payload(1000, b"*" * 124))], [C(1002)])
case("7.5.1", "close reason that is not UTF-8", [F(CLOSE, close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc"
                                                                     b"\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"))],
     [C(1007)])
case("7.5.2x", "close reason that ends in a truncated sequence", [F(CLOSE, close_payload(1000, b"bye \xe2\x82"))],
     [C(1007)])
case("7.5.3x", "close with a multi-byte UTF-8 reason", [F(CLOSE, close_payload(1000, KOSME))], [C(1000)])
for i, code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999], 1):
    case(f"7.7.{i}", f"close with valid code {code}: echoed", [F(CLOSE, close_payload(code))], [C(code, 1000)])
for i, code in enumerate([0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999], 1):
    case(f"7.9.{i}", f"close with invalid code {code}", [F(CLOSE, close_payload(code))], [C(1002)])
for i, code in enumerate([1015, 5000, 65535], 10):
    case(f"7.9.{i}x", f"close with invalid code {code}", [F(CLOSE, close_payload(code))], [C(1002)])
case("7.13.1x", "close code 4000 with a reason after a message", [F(TEXT, b"last"), F(CLOSE, close_payload(4000, b"x"))],
     [E, C(4000, 1000)])

# ------------------------------------------------------------------------------------------- 9 limited performance

LIMIT_SIZES = [("64 KiB", 65536), ("256 KiB (the limit)", MAX_MESSAGE)]
for group, binary in (("9.1", False), ("9.2", True)):
    kind = "binary" if binary else "text"
    for i, (label, n) in enumerate(LIMIT_SIZES, 1):
        case(f"{group}.{i}", f"{kind} message of {label}", [M(n, binary=binary)], [E], timeout=15)
    # One frame over the limit is refused by the frame decoder from its header, before its opcode counts.
    case(f"{group}.3x", f"{kind} frame one byte over the limit: 1009", [M(MAX_MESSAGE + 1, binary=binary)],
         [C(1009)], socket_expect=[C(1009)], timeout=15)
    case(f"{group}.4x", f"{kind} message one byte over the limit in 4 fragments: 1009",
         [M(MAX_MESSAGE + 1, piece=MAX_MESSAGE // 4, binary=binary)], [C(1009)], timeout=15)
for group, binary in (("9.3", False), ("9.4", True)):
    kind = "binary" if binary else "text"
    for i, piece in enumerate([64, 256, 1024, 4096, 16384, 65536, MAX_MESSAGE], 1):
        case(f"{group}.{i}", f"fragmented {kind} message of 256 KiB in {piece}-byte fragments",
             [M(MAX_MESSAGE, piece=piece, binary=binary)], [E], timeout=20)
for group, binary in (("9.5", False), ("9.6", True)):
    kind = "binary" if binary else "text"
    for i, chop in enumerate([64, 128, 256, 512, 1024, 2048], 1):
        case(f"{group}.{i}", f"{kind} message of 128 KiB written in {chop}-byte chops",
             [M(131072, binary=binary)], [E], chop=chop, timeout=20)
for group, binary in (("9.7", False), ("9.8", True)):
    kind = "binary" if binary else "text"
    for i, n in enumerate([0, 16, 64, 256, 1024, 4096], 1):
        case(f"{group}.{i}", f"1000 {kind} messages of {n} bytes, pipelined: all answered in order",
             [M(n, binary=binary) for _ in range(1000)], [E] * 1000, timeout=20)

# ------------------------------------------------------------------------------------------- 10 misc

case("10.1.1", "text message of 65536 bytes in 1300-byte fragments", [M(65536, piece=1300)], [E], timeout=15)
case("10.1.2x", "text message of 2000 bytes in 1-byte fragments", [M(2000, piece=1)], [E], timeout=15)
case("10.1.3x", "binary message of 500 bytes in 1-byte fragments, each written separately",
     [M(500, piece=1, binary=True)], [E], chop=7, timeout=15)


def section(case_id: str) -> str:
    return case_id.split(".", 1)[0]


assert len({c["id"] for c in CASES}) == len(CASES), "duplicate case ids"
