"""The hostile-input corpus (hostile/corpus.jsonl), PROTOCOL.md section 5.6: bad input gets a clear error and
changes nothing. Each case is sent on a fresh socket of the hub started with HOSTILE_ENV (rate limit 5/s,
burst 2200, close after 20 refusals in a row, 64 subscriptions per socket, 256 KiB messages, 3 s to
authenticate), and then:

- the reply, error event, pongs or close code are the ones the case states;
- the sender still works when it was not closed (a `ping` op is answered ok; an unauthenticated sender can
  still say `hello` and ping);
- a bystander, the same candidate's second socket subscribed to the attempt before the case, still answers a
  ping and received no event (a save or publish that got through would show as one);
- nothing stored changed: both attempts read back over `GET /v1/attempts/{id}` are as before.

Corpus line: {"id", "category", "desc", "as": candidate|proctor|service|none, "send": [...], "expect": {...}}.
send items (all written to the socket in one write):
  {"json": {...}} / {"text": "..."} / {"hex": "..."}   one text frame
  {"json": {...}, "pad": {"field": f, "bytes": n}}     with field f set to a string of n "x"
  {"template": "...", "repeat": {"{A}": [unit, n]}}    the template with {A} replaced by unit * n ($I: index)
  {"frame": {"opcode", "hex", "fin", "rsv", "mask"}}  one raw frame
  {"rawhex": "..."}                                    bytes written as they are (hand-made frame headers)
  {"fragments": text | {"template"...}, "piece": n}    a text message in n-byte fragments
  {"empty_continuations": n}                           n empty continuation frames (FIN clear)
  {"flood": {...}, "count": n}                         n text frames; "$N" in the object is 1..n
  {"pings": n, "size": k}                              n control pings with k-byte payloads
  Strings may hold $ATTEMPT, $OTHER_ATTEMPT, $EXAM, $OPID (fresh), $BASE_OPID (the baseline save's opId),
  $TOKEN (the sender's own token), $OTHER_USER_TOKEN, $EXPIRED_TOKEN, $BADSIG_TOKEN, $NONE_TOKEN.
expect:
  "reply": code | [codes] | "ok"   one reply, to id 1 (or "id"), and nothing else ("or_event": true also takes
                                   a conn error event with that code: for messages the parser cannot read)
  "event": code                    one `error` event on channel `conn`, and nothing else
  "replies" / "events": {code: n | [min, max]}   counts of replies (by error code, "ok") / conn error events
  "pongs": n                       that many pongs
  "close": code | [codes]          the hub closes with that code (after what the other keys state)
  "wait": seconds                  how long the hub may take (default 20; auth-timeout cases)
  "silent": true                   the client never answers the hub's close: the hub must still end TCP
"""
from __future__ import annotations

import collections
import json
import os
import struct
import time
from pathlib import Path

import pytest

import contract
import examkit
from hubclient import claims, jwt_hs256, jwt_none
from wsframes import OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, FrameConn, frame

CORPUS_PATH = Path(__file__).resolve().parent / "hostile" / "corpus.jsonl"
CORPUS = [json.loads(line) for line in CORPUS_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
BARRIER_ID = 8_000_000_000
CANDIDATE, OTHER_CANDIDATE, PROCTOR, SERVICE = "c-hostile", "c-hostile-other", "p-hostile", "s-hostile"
SENDERS = {"candidate": CANDIDATE, "proctor": PROCTOR, "service": SERVICE}


class World:
    """An exam, the hostile candidate's attempt with baseline answers, and another candidate's attempt."""

    def __init__(self, hub):
        self.hub = hub
        self.exam = examkit.create_exam(hub)["id"]
        self.base_opid = examkit.uid("base")
        with hub.client("candidate", CANDIDATE) as c:
            self.attempt = examkit.join(c, self.exam)["attemptId"]
            examkit.save_ok(c, self.attempt, "q-text", "baseline", op_id=self.base_opid)
            examkit.save_ok(c, self.attempt, "q-single", "A")
            examkit.save_ok(c, self.attempt, "q-number", 42)
        with hub.client("candidate", OTHER_CANDIDATE) as c:
            self.other_attempt = examkit.join(c, self.exam)["attemptId"]
            examkit.save_ok(c, self.other_attempt, "q-text", "other")

    def snapshot(self) -> dict:
        out = {}
        for a in (self.attempt, self.other_attempt):
            doc = examkit.attempt_doc(self.hub, a)
            out[a] = {"state": doc["state"], "deadline": doc["deadline"],
                      "answers": {q: (v["value"], v["version"]) for q, v in doc["answers"].items()}}
        return out

    def token(self, role: str) -> str:
        return self.hub.token(role, SENDERS[role])

    def substitute(self, text: str, role: str) -> str:
        if "$" not in text:
            return text
        hub = self.hub
        subs = {
            "$OTHER_ATTEMPT": self.other_attempt, "$ATTEMPT": self.attempt, "$EXAM": self.exam,
            "$BASE_OPID": self.base_opid,
            "$OTHER_USER_TOKEN": hub.token("candidate", OTHER_CANDIDATE),
            "$EXPIRED_TOKEN": hub.token(role if role != "none" else "candidate", SENDERS.get(role, CANDIDATE), ttl=-120),
            "$BADSIG_TOKEN": jwt_hs256(claims(CANDIDATE, "t1", "candidate"), "another-secret-" + "x" * 40),
            "$NONE_TOKEN": jwt_none(claims(CANDIDATE, "t1", "candidate")),
            "$TOKEN": self.token(role if role != "none" else "candidate"),
        }
        for k, v in subs.items():
            if k in text:
                text = text.replace(k, v)
        while "$OPID" in text:
            text = text.replace("$OPID", examkit.uid("hostile-op"), 1)
        return text


def _sub_obj(obj, world: World, role: str, n: int | None = None):
    if isinstance(obj, str):
        if obj == "$N" and n is not None:
            return n
        if n is not None:
            obj = obj.replace("$N", str(n))
        return world.substitute(obj, role)
    if isinstance(obj, list):
        return [_sub_obj(x, world, role, n) for x in obj]
    if isinstance(obj, dict):
        return {k: _sub_obj(v, world, role, n) for k, v in obj.items()}
    return obj


def _render(item: dict) -> str:
    text = item["template"]
    for key, (unit, count) in item["repeat"].items():
        rep = "".join(unit.replace("$I", str(i)) for i in range(count)) if "$I" in unit else unit * count
        text = text.replace(key, rep)
    return text


def build(case: dict, world: World) -> bytes:
    role = case["as"]
    out = []
    for item in case["send"]:
        if "json" in item:
            obj = _sub_obj(item["json"], world, role)
            if "pad" in item:
                obj[item["pad"]["field"]] = "x" * item["pad"]["bytes"]
            out.append(frame(OP_TEXT, json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()))
        elif "text" in item:
            out.append(frame(OP_TEXT, world.substitute(item["text"], role).encode()))
        elif "hex" in item:
            payload = bytes.fromhex(item["hex"])
            # Placeholders live in the ASCII parts.
            out.append(frame(OP_TEXT, world.substitute(payload.decode("latin-1"), role).encode("latin-1")))
        elif "template" in item:
            out.append(frame(OP_TEXT, _render(item).encode()))
        elif "frame" in item:
            f = item["frame"]
            out.append(frame(f["opcode"], bytes.fromhex(f["hex"]), f["fin"], f["rsv"], f["mask"]))
        elif "fragments" in item:
            text = item["fragments"]
            data, piece = (text if isinstance(text, str) else _render(text)).encode(), item["piece"]
            chunks = [data[i:i + piece] for i in range(0, len(data), piece)]
            out += [frame(OP_TEXT if k == 0 else OP_CONT, c, fin=k == len(chunks) - 1) for k, c in enumerate(chunks)]
        elif "rawhex" in item:
            out.append(bytes.fromhex(item["rawhex"]))
        elif "empty_continuations" in item:
            out += [frame(OP_CONT, b"", fin=False)] * item["empty_continuations"]
        elif "flood" in item:
            out += [frame(OP_TEXT, json.dumps(_sub_obj(item["flood"], world, role, n)).encode())
                    for n in range(1, item["count"] + 1)]
        elif "pings" in item:
            out += [frame(OP_PING, f"{i:0{item['size']}d}"[-item["size"]:].encode()) for i in range(item["pings"])]
        else:
            raise AssertionError(f"case {case['id']}: unknown send item {item}")
    return b"".join(out)


@pytest.fixture(scope="module")
def world(hostile_hub):
    return World(hostile_hub)


def _hello(conn: FrameConn, token: str, rid: int = 7_000_000_000) -> dict:
    conn.send(OP_TEXT, json.dumps({"op": "hello", "id": rid, "token": token}).encode())
    return _next_json(conn, 5)


def _next_json(conn: FrameConn, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        obs = conn.next_observation(max(0.01, deadline - time.monotonic()))
        if obs[0] == "pong":
            continue
        assert obs[0] == "text", f"expected a JSON message, saw {obs[:2]}"
        return json.loads(obs[1])


def _in(count: int, want) -> bool:
    return want[0] <= count <= want[1] if isinstance(want, list) else count == want


@pytest.mark.parametrize("case", CORPUS, ids=[c["id"] for c in CORPUS])
def test_hostile_case(hostile_hub, world, case):
    hub, cid = hostile_hub, case["id"]
    what = f"case {cid} ({case['desc']})"
    role = case["as"]
    before = world.snapshot()
    bystander = hub.client("candidate", CANDIDATE, label=f"case {cid} bystander")
    try:
        bystander.ok("subscribe", ch=f"attempt:{world.attempt}")
        sender = FrameConn(hub.host, hub.port, "/v1/socket")
        try:
            if role != "none":
                hello = _hello(sender, world.token(role))
                assert hello.get("ok") is True, f"{what}: hello failed: {hello}"
            expect = case["expect"]
            sender.write(build(case, world))
            expects_close = "close" in expect
            if not expects_close:
                sender.send(OP_TEXT, json.dumps({"op": "ping", "id": BARRIER_ID}).encode())
            replies: list[dict] = []
            events: list[dict] = []
            pongs = 0
            close_code = None
            barrier = None
            validated = 0
            needed = 1 if "reply" in expect and not expect.get("or_event") else 0
            for want in expect.get("replies", {}).values():
                needed += want[0] if isinstance(want, list) else want
            deadline = time.monotonic() + expect.get("wait", 20)
            while True:
                try:
                    obs = sender.next_observation(max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    raise AssertionError(f"{what}: no {'close' if expects_close else 'barrier reply'} within "
                                         f"{expect.get('wait', 20)} s; "
                                         f"saw {len(replies)} replies, {len(events)} events, {pongs} pongs") from None
                if obs[0] == "pong":
                    pongs += 1
                    continue
                if obs[0] == "close":
                    close_code = obs[1]
                    if not expect.get("silent"):
                        sender.send(OP_CLOSE, struct.pack("!H", obs[1] or 1000))
                    break
                assert obs[0] == "text", f"{what}: unexpected {obs[0]} from the hub: {obs[1:]!r}"[:400]
                doc = json.loads(obs[1])
                if validated < 50:
                    try:
                        if doc.get("op") == "event":
                            contract.validate_event(doc)
                        else:
                            contract.validate_server_frame(doc)
                    except contract.ValidationError as e:
                        raise AssertionError(f"{what}: a frame off the contract: {doc}: {e.message}") from None
                    validated += 1
                if doc.get("op") == "reply" and doc.get("id") == BARRIER_ID:
                    barrier = doc
                else:
                    (replies if doc.get("op") == "reply" else events).append(doc)
                # Replies that wait for the store may come after the barrier's.
                if barrier is not None and len(replies) >= needed:
                    break

            def code_of(doc):
                if doc.get("op") == "reply":
                    return "ok" if doc["ok"] else doc["error"]["code"]
                return doc.get("data", {}).get("code") if doc.get("ch") == "conn" else f"event {doc.get('type')}"

            seen = (f"replies {collections.Counter(code_of(r) for r in replies)}, "
                    f"events {collections.Counter(code_of(e) for e in events)}, pongs {pongs}, close {close_code}")
            if expects_close:
                want_close = expect["close"] if isinstance(expect["close"], list) else [expect["close"]]
                assert close_code in want_close, f"{what}: expected close {want_close}; saw {seen}"
            else:
                assert close_code is None, f"{what}: closed with {close_code}; saw {seen}"
            if "reply" in expect:
                want = expect["reply"] if isinstance(expect["reply"], list) else [expect["reply"]]
                rid = expect.get("id", 1)
                if expect.get("or_event") and not replies and len(events) == 1:
                    assert code_of(events[0]) in want, f"{what}: expected {want}; saw {seen}"
                else:
                    assert len(replies) == 1 and not events, f"{what}: expected one reply {want}; saw {seen}"
                    assert replies[0]["id"] == rid, f"{what}: reply to id {replies[0]['id']}, expected {rid}"
                    assert code_of(replies[0]) in want, f"{what}: expected {want}; saw {replies[0]}"
                    if not replies[0]["ok"]:
                        assert replies[0]["error"]["message"], f"{what}: an error without a message"
            if "event" in expect:
                assert not replies and len(events) == 1, f"{what}: expected one conn error event; saw {seen}"
                assert events[0]["ch"] == "conn" and events[0]["type"] == "error", f"{what}: {events[0]}"
                assert code_of(events[0]) == expect["event"], f"{what}: expected {expect['event']}; saw {events[0]}"
            for key, docs in (("replies", replies), ("events", events)):
                if key in expect:
                    counts = collections.Counter(code_of(d) for d in docs)
                    for code, want in expect[key].items():
                        assert _in(counts.get(code, 0), want), f"{what}: {key} {code}: expected {want}; saw {seen}"
                    extra = set(counts) - set(expect[key])
                    assert not extra, f"{what}: unexpected {key} {extra}; saw {seen}"
                    if key == "replies":
                        ids = [d["id"] for d in docs]
                        assert len(ids) == len(set(ids)), f"{what}: a request was answered twice"
            if "replies" not in expect and "reply" not in expect:
                assert not replies, f"{what}: unexpected replies; saw {seen}"
            if "events" not in expect and "event" not in expect and not expect.get("or_event"):
                assert not events, f"{what}: unexpected events; saw {seen}"
            assert pongs == expect.get("pongs", 0), f"{what}: expected {expect.get('pongs', 0)} pongs; saw {seen}"

            # The sender goes on, when it was not closed.
            if not expects_close:
                if role == "none":
                    assert barrier["ok"] is False and barrier["error"]["code"] == "unauthorized", f"{what}: {barrier}"
                    hello = _hello(sender, world.token("candidate"))
                    assert hello.get("ok") is True, f"{what}: hello after the case failed: {hello}"
                else:
                    assert barrier["ok"] is True, f"{what}: the barrier ping failed: {barrier}"
                sender.send(OP_TEXT, json.dumps({"op": "ping", "id": 5}).encode())
                after = _next_json(sender, 5)
                assert after.get("id") == 5 and after.get("ok") is True, f"{what}: ping after the case: {after}"
            else:
                try:
                    end = sender.next_observation(6)
                except TimeoutError:
                    end = ("still open after 6 s",)
                assert end[0] in ("eof", "reset"), f"{what}: the hub did not close TCP after the close: {end}"
        finally:
            sender.close()
        # The bystander goes on and saw nothing.
        bystander.assert_no_event()
    finally:
        bystander.close()
    assert hub.running, f"{what}: the hub is no longer running"
    after = world.snapshot()
    assert after == before, f"{what}: stored state changed: before {before}, after {after}"
