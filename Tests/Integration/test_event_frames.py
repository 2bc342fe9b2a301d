"""Channel events are framed once per event loop and written to every subscriber as they are (past the frame
encoder), unless that subscriber takes them compressed (PROTOCOL.md guarantee 3: every other open socket of the
attempt receives `answer.saved`; section 2: `seq` increases by one per channel). These tests read the frames raw, so a
wrong header (7-, 16- or 64-bit length) or a frame shared wrongly between plain and compressing sockets shows."""
from __future__ import annotations

import json

from examkit import create_exam, join, save_ok
from test_compression import DeflateWS

SIZES = [10, 300, 65_500]  # payload lengths in the 7-bit, 16-bit and 64-bit forms once wrapped in the event


def test_plain_and_compressing_subscribers_get_the_same_events_in_order(start_hub):
    hub = start_hub({"EXAMHUB_COMPRESSION_CHANNELS": "attempt", "EXAMHUB_COMPRESSION_MIN_BYTES": "64"})
    exam = create_exam(hub)
    token = hub.token("candidate", "u-frames", "t1")
    saver = hub.client(sub="u-frames")
    attempt = join(saver, exam["id"])["attemptId"]

    plain = hub.raw()  # no extension offered: events come framed once, as they are
    plain.send_text(json.dumps({"op": "hello", "id": 1, "token": token}))
    assert plain.reply(1)["ok"] is True
    plain.send_text(json.dumps({"op": "attempt.join", "id": 2, "examId": exam["id"]}))
    assert plain.reply(2)["ok"] is True

    deflating = DeflateWS(hub, "permessage-deflate")
    assert deflating.agreed
    assert deflating.request("hello", 1, token=token)["ok"] is True
    assert deflating.request("attempt.join", 2, examId=exam["id"])["ok"] is True

    values = ["v" * n for n in SIZES]
    for v in values:
        save_ok(saver, attempt, "q-text", v)

    seen_plain, seen_deflating = [], []
    while len(seen_plain) < len(values):
        fin, opcode, payload = plain.recv_frame()
        if opcode != 0x1:
            continue
        assert fin
        event = json.loads(payload)
        if event.get("op") == "event" and event["type"] == "answer.saved":
            seen_plain.append(event)
    while len(seen_deflating) < len(values):
        compressed, event = deflating.recv_message()
        if event.get("op") == "event" and event["type"] == "answer.saved":
            seen_deflating.append((compressed, event))

    for events in (seen_plain, [e for _, e in seen_deflating]):
        assert [e["data"]["value"] for e in events] == values
        assert [e["data"]["version"] for e in events] == [1, 2, 3]
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(seqs[0], seqs[0] + len(values))), seqs
        assert all(e["ch"] == f"attempt:{attempt}" for e in events)
    # Same seq on both sockets: one event, two encodings.
    assert [e["seq"] for e in seen_plain] == [e["seq"] for _, e in seen_deflating]
    # Every event frame is over the 64-byte minimum (the envelope alone is), so the deflating socket got all three
    # compressed, while the plain socket read them framed as they are.
    assert all(c for c, _ in seen_deflating)
    saver.close()
    plain.close()
    deflating.close()


def test_a_burst_of_events_reaches_many_subscribers_intact(hub):
    """Thirty proctor sockets on one attempt channel and 40 saves in a burst: each socket reads the 40 events whole,
    in order, with no seq missing (one flush per loop for all of them)."""
    exam = create_exam(hub)
    saver = hub.client(sub="u-burst")
    attempt = join(saver, exam["id"])["attemptId"]
    watchers = []
    for i in range(30):
        w = hub.raw()
        w.send_text(json.dumps({"op": "hello", "id": 1, "token": hub.token("proctor", f"p-burst-{i}", "t1")}))
        assert w.reply(1)["ok"] is True
        w.send_text(json.dumps({"op": "subscribe", "id": 2, "ch": f"attempt:{attempt}"}))
        assert w.reply(2)["ok"] is True
        watchers.append(w)
    for i in range(40):
        save_ok(saver, attempt, "q-text", f"answer {i} " + "x" * (i * 37))
    for w in watchers:
        got = []
        while len(got) < 40:
            event = w.recv_json()
            if event.get("op") == "event" and event["type"] == "answer.saved":
                got.append(event)
        assert [e["data"]["version"] for e in got] == list(range(1, 41))
        assert [e["seq"] for e in got] == list(range(got[0]["seq"], got[0]["seq"] + 40))
        w.close()
    saver.close()
