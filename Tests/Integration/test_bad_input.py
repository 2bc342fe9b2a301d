"""Bad input (PROTOCOL.md sections 2 and 5.6): a malformed frame gets a `bad_request` reply, or an `error` event
on channel `conn` when it has no usable id, or the close code of the list; the connection (when not closed)
and every other connection go on. Each case is followed by a normal ping on the same socket and on a
bystander socket."""
from __future__ import annotations

import json
import struct

import pytest

from hubclient import validate_reply


def nested(depth: int) -> str:
    return '{"op":"ping","id":20,"x":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


# (name, text sent, expected): expected is ("event",) for a conn error event or ("reply", id) for a reply.
MALFORMED = [
    ("truncated JSON", '{"op":', ("event",)),
    ("not JSON", "hello there", ("event",)),
    ("empty message", "", ("event",)),
    ("trailing comma", '{"op":"ping","id":1,}', ("event",)),
    ("trailing garbage", '{"op":"ping","id":1} x', ("event",)),
    ("two objects", '{"op":"ping","id":1}{"op":"ping","id":2}', ("event",)),
    ("JSON array", '[{"op":"ping","id":1}]', ("event",)),
    ("JSON string", '"ping"', ("event",)),
    ("JSON number", "42", ("event",)),
    ("JSON null", "null", ("event",)),
    ("missing op with id", '{"id":5}', ("reply", 5)),
    ("missing op without id", "{}", ("event",)),
    ("op a number", '{"op":5,"id":6}', ("reply", 6)),
    ("op null", '{"op":null,"id":7}', ("reply", 7)),
    ("op an object", '{"op":{"name":"ping"},"id":8}', ("reply", 8)),
    ("op empty", '{"op":"","id":9}', ("reply", 9)),
    ("op too long", json.dumps({"op": "x" * 65, "id": 10}), ("reply", 10)),
    ("id negative", '{"op":"ping","id":-1}', ("event",)),
    ("id a string", '{"op":"ping","id":"7"}', ("event",)),
    ("id a float", '{"op":"ping","id":1.5}', ("event",)),
    ("id an object", '{"op":"ping","id":{"n":1}}', ("event",)),
    ("id above 2^53-1", '{"op":"ping","id":9007199254740992}', ("event",)),
    ("id huge", '{"op":"ping","id":123456789012345678901234567890}', ("event",)),
    ("unknown op", '{"op":"teleport","id":11}', ("reply", 11)),
    ("unknown op, upper case", '{"op":"PING","id":12}', ("reply", 12)),
    ("hello again", '{"op":"hello","id":13,"token":"x"}', ("reply", 13)),
]


@pytest.fixture
def pair(hub):
    """An authenticated socket and an authenticated bystander."""
    with hub.client("proctor", "p-bad", label="sender") as sender, \
            hub.client("proctor", "p-bystander", label="bystander") as bystander:
        yield sender, bystander


def check_error_frame(frame: dict, expected: tuple, code: str = "bad_request") -> None:
    if expected[0] == "event":
        assert frame["op"] == "event" and frame["ch"] == "conn" and frame["type"] == "error", frame
        assert frame["data"]["code"] == code and frame["data"]["message"], frame
    else:
        assert frame["op"] == "reply" and frame["id"] == expected[1] and frame["ok"] is False, frame
        validate_reply("ping", frame)  # the error-reply schema
        assert frame["error"]["code"] == code and frame["error"]["message"], frame


@pytest.mark.parametrize("name,text,expected", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_frame_gets_an_error_and_the_connections_go_on(pair, name, text, expected):
    sender, bystander = pair
    sender.send(text)
    frame = sender.recv()  # validated: events/error.json or the error-reply schema
    check_error_frame(frame, expected)
    sender.assert_no_event()
    bystander.assert_no_event()


def test_error_events_count_up_per_connection(pair):
    sender, bystander = pair
    seqs = []
    for text in ["{", "[]", "{}", '{"op":"ping","id":-5}']:
        sender.send(text)
        frame = sender.event()
        assert frame["ch"] == "conn" and frame["type"] == "error"
        seqs.append(frame["seq"])
    assert seqs == [1, 2, 3, 4]
    bystander.send("{")
    assert bystander.event()["seq"] == 1  # its own sequence
    sender.ping()


def test_request_without_id_gets_no_reply(pair):
    sender, _ = pair
    sender.send({"op": "ping"})
    sender.send({"op": "subscribe", "ch": "exam:e-noid:proctor"})
    sender.send({"op": "teleport"})  # an error with no id to answer: an error event
    frame = sender.event()
    check_error_frame(frame, ("event",))
    sender.assert_no_event()  # the next reply is the ping's (a stray reply would not match its id)


@pytest.mark.parametrize("depth", [100, 1000])
def test_deeply_nested_json_is_refused(pair, depth):
    sender, bystander = pair
    sender.send(nested(depth))
    frame = sender.recv()
    # The id is readable before the nesting: a reply to it is as good as a conn error event.
    check_error_frame(frame, ("reply", 20) if frame["op"] == "reply" else ("event",))
    sender.assert_no_event()
    bystander.assert_no_event()


def test_moderately_nested_json_is_accepted(pair):
    sender, _ = pair
    sender.send(nested(20))
    frame = sender.recv()
    assert frame["op"] == "reply" and frame["id"] == 20 and frame["ok"] is True, frame


def test_unknown_fields_are_ignored(pair):
    sender, _ = pair
    sender.send({"op": "ping", "id": 30, "extra": {"anything": [1, 2, 3]}})
    assert sender.reply(30, "ping")["ok"] is True


def test_unicode_in_fields_round_trips_in_errors(pair):
    sender, _ = pair
    err = sender.error("subscribe", "bad_request", ch="exam:\u00e9\u4e2d\U0001F600:proctor")
    assert err["message"]
    sender.ping()


# ----------------------------------------------------------------------------------------------- close codes


@pytest.fixture
def bearer(tight_hub):
    return {"Authorization": f"Bearer {tight_hub.token('proctor', 'p-raw')}"}


@pytest.fixture
def bystander(tight_hub):
    with tight_hub.client("proctor", "p-bystander", label="bystander") as c:
        yield c


def test_oversized_message_closes_with_1009_and_bystander_is_fine(tight_hub, bystander):
    """EXAMHUB_MAX_MESSAGE_BYTES=4096."""
    with tight_hub.client("proctor", "p-big") as big:
        big.send(json.dumps({"op": "ping", "id": 1, "pad": "x" * 5000}))
        big.expect_close(1009)
    bystander.ping()


def test_oversized_fragmented_message_closes_with_1009(tight_hub, bearer, bystander):
    raw = tight_hub.raw(headers=bearer)
    try:
        raw.send_frame(0x1, b'{"op":"ping","id":1,"pad":"' + b"x" * 2000, fin=False)
        raw.send_frame(0x0, b"x" * 2000, fin=False)
        raw.send_frame(0x0, b"x" * 2000 + b'"}', fin=True)
        raw.expect_close(1009)
    finally:
        raw.close()
    bystander.ping()


def test_message_of_exactly_the_limit_is_accepted(tight_hub, bystander):
    with tight_hub.client("proctor", "p-edge") as c:
        prefix, suffix = '{"op":"ping","id":41,"pad":"', '"}'
        text = prefix + "x" * (4096 - len(prefix) - len(suffix)) + suffix
        assert len(text.encode()) == 4096
        c.send(text)
        assert c.reply(41, "ping")["ok"] is True
    bystander.ping()


def test_binary_frame_closes_with_1003(tight_hub, bystander):
    with tight_hub.client("proctor", "p-bin") as c:
        c.send(json.dumps({"op": "ping", "id": 1}).encode())
        c.expect_close(1003)
    bystander.ping()


def test_binary_frame_before_hello_closes_with_1003(tight_hub, bystander):
    with tight_hub.connect() as c:
        c.send(b"\x00\x01")
        c.expect_close(1003)
    bystander.ping()


@pytest.mark.parametrize("frames", [
    [(True, b'{"op":"ping","id":1,"x":"\xff"}')],
    [(True, b'{"op":"ping","id":1,"x":"\xed\xa0\x80"}')],  # a UTF-16 surrogate encoded in UTF-8
    [(True, b'{"op":"ping","id":1,"x":"\xc0\xaf"}')],  # overlong encoding
    [(False, b'{"op":"ping","id":1,"x":"\xe2\x82'), (True, b'\x28"}')],  # bad continuation across fragments
    [(True, b'{"op":"ping","id":1} \xe2\x82')],  # truncated sequence at the end of the message
], ids=["0xff", "surrogate", "overlong", "split across fragments", "truncated at the end"])
def test_invalid_utf8_text_closes_with_1007(tight_hub, bearer, bystander, frames):
    raw = tight_hub.raw(headers=bearer)
    try:
        for i, (fin, payload) in enumerate(frames):
            raw.send_frame(0x1 if i == 0 else 0x0, payload, fin=fin)
        raw.expect_close(1007)
    finally:
        raw.close()
    bystander.ping()


def test_utf8_split_across_fragments_is_reassembled(tight_hub, bearer, bystander):
    raw = tight_hub.raw(headers=bearer)
    try:
        euro = "\u20ac".encode()
        raw.send_frame(0x1, b'{"op":"ping","id":51,"x":"' + euro[:1], fin=False)
        raw.send_frame(0x9, b"mid-message ping")  # control frames may interleave with fragments
        raw.send_frame(0x0, euro[1:2], fin=False)
        raw.send_frame(0x0, euro[2:] + b'"}', fin=True)
        fin, opcode, payload = raw.recv_frame()
        assert (opcode, payload) == (0xA, b"mid-message ping")  # pong with the ping's payload
        reply = raw.recv_json()
        assert reply["id"] == 51 and reply["ok"] is True
        validate_reply("ping", reply)
    finally:
        raw.close()
    bystander.ping()


@pytest.mark.parametrize("case", [
    "unmasked frame", "reserved opcode", "continuation without a message", "rsv1 without an extension",
    "new message inside a fragmented one", "fragmented ping", "ping payload over 125 bytes",
])
def test_protocol_violations_close_with_1002(tight_hub, bearer, bystander, case):
    raw = tight_hub.raw(headers=bearer)
    ping = json.dumps({"op": "ping", "id": 1}).encode()
    try:
        if case == "unmasked frame":
            raw.send_frame(0x1, ping, mask=False)
        elif case == "reserved opcode":
            raw.send_frame(0x3, b"")
        elif case == "continuation without a message":
            raw.send_frame(0x0, ping)
        elif case == "rsv1 without an extension":
            raw.send_frame(0x1, ping, rsv=4)
        elif case == "new message inside a fragmented one":
            raw.send_frame(0x1, b'{"op":', fin=False)
            raw.send_frame(0x1, ping)
        elif case == "fragmented ping":
            raw.send_frame(0x9, b"a", fin=False)
        elif case == "ping payload over 125 bytes":
            raw.send_frame(0x9, b"p" * 126)
        raw.expect_close(1002)
    finally:
        raw.close()
    bystander.ping()


@pytest.mark.parametrize("payload,answer", [
    (struct.pack("!H", 1000), 1000),
    (struct.pack("!H", 4000) + b"bye", 4000),
    (b"", 1000),
    (b"\x03", 1002),  # a one-byte close payload
    (struct.pack("!H", 999), 1002),  # not a valid close code
    (struct.pack("!H", 1005), 1002),  # reserved, never sent on the wire
    (struct.pack("!H", 1000) + b"\xff", 1007),  # reason not UTF-8
])
def test_client_close_handshake(tight_hub, bearer, bystander, payload, answer):
    raw = tight_hub.raw(headers=bearer)
    try:
        raw.send_frame(0x8, payload)
        fin, opcode, reply = raw.recv_frame()
        assert opcode == 0x8 and struct.unpack("!H", reply[:2])[0] == answer, reply
    finally:
        raw.close()
    bystander.ping()
