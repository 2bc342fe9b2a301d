"""The assistant end to end (issue 5, PROTOCOL.md `chat.send`, `chat.cancel`, `chat:<id>`): intents answered from
live state, the content policy, the LLM gateway streaming from a local OpenAI-compatible server (fakellm.py) with
429s, cuts, cancels and disconnects, conversations that survive a reconnect, idempotent clientMsgIds, and every
refusal. Every frame is checked against Protocols/ by `Client`."""
from __future__ import annotations

import time

import pytest

from examkit import create_exam, events_of, join, uid, wait_until
from fakellm import ANSWER, FakeLLM
from hubclient import Hub

SECRET_PROMPT = "SECRET-QUESTION-TEXT-7741"


def tag() -> str:
    """A unique word of letters only (digits would look like numbers or dates to the intent matcher)."""
    import random
    return "".join(random.choice("bcdfghjklmnpqrstvwxz") for _ in range(8))


def chat(c, text: str, **fields) -> dict:
    return c.ok("chat.send", text=text, clientMsgId=fields.pop("clientMsgId", uid("m")), **fields)


def answer_events(c, sent: dict, timeout: float = 10) -> list[dict]:
    """Every event of the answer to `sent`, up to its chat.reply (intents, policy), chat.done or chat.error."""
    ch = f"chat:{sent['conversationId']}"
    out = []
    deadline = time.monotonic() + timeout
    while True:
        ev = events_of(c, ch, timeout=max(0.1, deadline - time.monotonic()))[0]
        assert ev["data"]["messageId"] == sent["messageId"], ev
        out.append(ev)
        t = ev["type"]
        if t in ("chat.done", "chat.error") or (t == "chat.reply" and ev["data"]["source"] != "llm"):
            return out


def reply_of(c, sent: dict) -> dict:
    evs = answer_events(c, sent)
    assert evs[-1]["type"] == "chat.reply", evs
    return evs[-1]["data"]


@pytest.fixture(scope="module")
def llm():
    fake = FakeLLM()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def llm_hub(tmp_path_factory, llm):
    hub = Hub(tmp_path_factory.mktemp("llmhub") / "hub",
              env={"EXAMHUB_LLM_URL": llm.url, "EXAMHUB_LLM_MODEL": "fake-model", "EXAMHUB_LLM_API_KEY": "sk-test-1"})
    yield hub
    assert hub.stop() == 0, hub.stderr_tail()


def secret_exam(hub):
    qs = [{"id": "q1", "type": "text", "prompt": SECRET_PROMPT}, {"id": "q2", "type": "number", "prompt": "How many?"}]
    return create_exam(hub, qs=qs, duration=3600, grace=30)


# ------------------------------------------------------------------------------------------------ intents


def test_intents_answer_from_live_state(hub):
    exam = secret_exam(hub)
    with hub.client("candidate", uid("c")) as c:
        outside = reply_of(c, chat(c, "how much time do I have left?"))
        assert outside["intent"] == "time_left" and outside["source"] == "intent"
        assert "not in an exam attempt" in outside["text"]
        aid = join(c, exam["id"])["attemptId"]
        sent = chat(c, "how much time do I have left?", attemptId=aid)
        r = reply_of(c, sent)
        assert r["intent"] == "time_left" and r["source"] == "intent" and 0.5 <= r["confidence"] <= 1
        assert "59 minutes" in r["text"] or "1 hour" in r["text"], r
        c.ok("answer.save", attemptId=aid, qid="q1", value="draft", opId=uid("op"))
        r = reply_of(c, chat(c, "are my answers saved?", attemptId=aid, conversationId=sent["conversationId"]))
        assert r["intent"] == "save_status" and "1 answer is saved" in r["text"], r
        r = reply_of(c, chat(c, "what are the rules of this exam?", attemptId=aid))
        assert r["intent"] == "exam_rules" and "2 questions" in r["text"] and "30 seconds" in r["text"], r


def test_a_report_reaches_the_proctors(hub):
    exam = secret_exam(hub)
    with hub.client("proctor", uid("p")) as p, hub.client("candidate", uid("c")) as c:
        p.ok("proctor.watch", examId=exam["id"])
        aid = join(c, exam["id"])["attemptId"]
        r = reply_of(c, chat(c, "I want to report a problem, question 2 does not load", attemptId=aid))
        assert r["intent"] == "report_problem", r
        help_ev = events_of(p, f"exam:{exam['id']}:proctor", "candidate.help")[0]["data"]
        assert help_ev["attemptId"] == aid and help_ev["kind"] == "problem" and help_ev["reportId"] in r["text"]
        r = reply_of(c, chat(c, "can I talk to a real person please", attemptId=aid))
        assert r["intent"] == "human_help" and "proctor" in r["text"], r
        assert events_of(p, f"exam:{exam['id']}:proctor", "candidate.help")[0]["data"]["kind"] == "help"


def test_without_an_llm_the_assistant_says_it_cannot_answer(hub):
    with hub.client("candidate", uid("c")) as c:
        r = reply_of(c, chat(c, "what is the capital of France?"))
        assert r["intent"] is None and r["source"] == "intent" and "can't answer that here" in r["text"]


# ------------------------------------------------------------------------------------------------ policy


@pytest.mark.parametrize("text", [
    "what's the answer to question 2?",
    "give me a hint for the first question",
    "can you explain this question to me",
    "please solve the integral in question one for me",
])
def test_exam_content_is_refused_during_an_attempt_and_never_reaches_the_llm(llm_hub, llm, text):
    exam = secret_exam(llm_hub)
    before = len(llm.requests)
    with llm_hub.client("candidate", uid("c")) as c:
        aid = join(c, exam["id"])["attemptId"]
        r = reply_of(c, chat(c, text, attemptId=aid))
        assert r["source"] == "policy" and r["intent"] == "exam_help", r
        assert "can't help" in r["text"] or "not able to help" in r["text"]
    assert len(llm.requests) == before


def test_abuse_is_refused_politely_and_counted(hub):
    def counted():
        status, _, body = hub.http("GET", "/metrics")
        line = next((l for l in body.decode().splitlines() if l.startswith("examhub_chat_abusive_total")), "x 0")
        return float(line.split()[-1])
    before = counted()
    with hub.client("candidate", uid("c")) as c:
        r = reply_of(c, chat(c, "you are a useless idiot"))
        assert r["source"] == "policy" and "respectful" in r["text"]
        r = reply_of(c, chat(c, "this stupid webcam will not start"))  # frustration, not abuse
        assert r["source"] == "intent", r
    assert counted() == before + 1


# ------------------------------------------------------------------------------------------------ LLM


def test_the_llm_answer_streams_then_completes_with_usage(llm_hub, llm):
    exam = secret_exam(llm_hub)
    with llm_hub.client("candidate", uid("c")) as c:
        aid = join(c, exam["id"])["attemptId"]
        sent = chat(c, "what is the capital of France?", attemptId=aid)
        evs = answer_events(c, sent)
        deltas = [e for e in evs if e["type"] == "chat.delta"]
        assert len(deltas) >= 3 and "".join(e["data"]["text"] for e in deltas) == ANSWER
        final = [e for e in evs if e["type"] == "chat.reply"][0]["data"]
        assert final["source"] == "llm" and final["text"] == ANSWER and final["intent"] is None
        done = evs[-1]
        assert done["type"] == "chat.done"
        assert done["data"]["usage"]["promptTokens"] == 42 and done["data"]["usage"]["totalTokens"] > 42
        assert [e["seq"] for e in evs] == list(range(evs[0]["seq"], evs[0]["seq"] + len(evs))), "in order, no gap"
    req = llm.requests[-1]
    assert req["model"] == "fake-model" and req["stream"] is True
    assert llm.headers[-1]["authorization"] == "Bearer sk-test-1"
    assert req["messages"][0]["role"] == "system" and "exam" in req["messages"][0]["content"]
    assert SECRET_PROMPT not in str(req), "the exam's questions never go to the LLM"
    wait_until(lambda: llm_hub_usage_rows(llm_hub) >= 1, 5, what="usage stored")


def llm_hub_usage_rows(hub) -> int:
    from examkit import db_rows
    return db_rows(hub.db_path, "SELECT count(*) FROM llm_usage")[0][0]


def test_a_429_is_retried_before_the_first_token(llm_hub, llm):
    with llm_hub.client("candidate", uid("c")) as c:
        text = f"what is the tallest mountain on earth [429] {tag()}"
        evs = answer_events(c, chat(c, text))
        assert evs[-1]["type"] == "chat.done", evs
    assert llm.user_messages().count(text) == 2


def test_a_cut_stream_ends_in_an_error_and_is_not_repeated(llm_hub, llm):
    with llm_hub.client("candidate", uid("c")) as c:
        text = f"what is the capital of France [cut] {tag()}"
        evs = answer_events(c, chat(c, text))
        assert [e["data"]["text"] for e in evs if e["type"] == "chat.delta"] == ["Half ", "an answer"]
        assert evs[-1]["type"] == "chat.error" and evs[-1]["data"]["code"] == "unavailable", evs
    assert llm.user_messages().count(text) == 1, "a partly streamed answer is never asked again"


def test_a_failing_provider_is_a_clear_error(llm_hub, llm):
    with llm_hub.client("candidate", uid("c")) as c:
        evs = answer_events(c, chat(c, f"what is the capital of Spain [500] {tag()}"), timeout=20)
        assert evs[-1]["type"] == "chat.error" and evs[-1]["data"]["code"] == "unavailable", evs
        c.ping()


def test_chat_cancel_stops_the_answer_and_the_request(llm_hub, llm):
    disconnects = llm.disconnects
    with llm_hub.client("candidate", uid("c")) as c:
        sent = chat(c, f"what is the capital of Italy [slow] {tag()}")
        events_of(c, f"chat:{sent['conversationId']}", "chat.delta", n=2)
        assert c.ok("chat.cancel", conversationId=sent["conversationId"]) == {"cancelled": True}
        done = events_of(c, f"chat:{sent['conversationId']}", "chat.done")[0]["data"]
        assert done["cancelled"] is True
        wait_until(lambda: llm.disconnects > disconnects, 8, what="the provider seeing the request torn down")
        assert c.ok("chat.cancel", conversationId=sent["conversationId"]) == {"cancelled": False}


def test_a_disconnect_tears_the_llm_request_down(llm_hub, llm):
    disconnects = llm.disconnects
    c = llm_hub.client("candidate", uid("c"))
    sent = chat(c, f"what is the capital of Germany [slow] {tag()}")
    events_of(c, f"chat:{sent['conversationId']}", "chat.delta", n=2)
    c.close()
    wait_until(lambda: llm.disconnects > disconnects, 8, what="the provider seeing the request torn down")


def test_a_conversation_survives_a_reconnect(llm_hub, llm):
    sub = uid("c")
    with llm_hub.client("candidate", sub) as c:
        first = chat(c, "what is the capital of France?")
        evs = answer_events(c, first)
        cid = first["conversationId"]
        last_seq = evs[-1]["seq"]
    with llm_hub.client("candidate", sub) as c:
        sub_data = c.ok("subscribe", ch=f"chat:{cid}", since={"epoch": "nope", "seq": 0})
        assert sub_data["recovered"] is False and sub_data["seq"] == last_seq
        second = chat(c, "and what river runs through it?", conversationId=cid)
        assert second["conversationId"] == cid
        answer_events(c, second)
    history = llm.requests[-1]["messages"]
    texts = [(m["role"], m["content"]) for m in history]
    assert ("user", "what is the capital of France?") in texts and ("assistant", ANSWER) in texts
    assert texts[-1] == ("user", "and what river runs through it?")


def test_the_same_client_message_id_is_answered_once(hub):
    with hub.client("candidate", uid("c")) as c:
        first = chat(c, "hello", clientMsgId="same-1")
        reply_of(c, first)
        again = c.ok("chat.send", text="hello", clientMsgId="same-1", conversationId=first["conversationId"])
        assert again["messageId"] == first["messageId"] and again["replayed"] is True
        c.assert_no_event()


# ------------------------------------------------------------------------------------------------ refusals


def test_nobody_else_reads_or_writes_a_conversation(hub):
    exam = secret_exam(hub)
    with hub.client("candidate", uid("owner")) as owner:
        aid = join(owner, exam["id"])["attemptId"]
        sent = chat(owner, "hello")
        reply_of(owner, sent)
        cid = sent["conversationId"]
    with hub.client("candidate", uid("other")) as other:
        other.error("chat.send", "forbidden", text="hi", clientMsgId="x1", conversationId=cid)
        other.error("chat.cancel", "forbidden", conversationId=cid)
        other.error("subscribe", "forbidden", ch=f"chat:{cid}")
        other.error("chat.send", "forbidden", text="time left?", clientMsgId="x2", attemptId=aid)
    with hub.client("candidate", uid("x"), tenant="t2") as stranger:
        stranger.error("chat.send", "forbidden", text="hi", clientMsgId="x3", conversationId=cid)
        stranger.error("chat.cancel", "not_found", conversationId=cid)
        stranger.error("chat.send", "not_found", text="time left?", clientMsgId="x4", attemptId=aid)
    with hub.client("proctor", uid("p")) as p:
        p.error("chat.send", "forbidden", text="time left?", clientMsgId="x5", attemptId=aid)
        p.error("chat.cancel", "not_found", conversationId="cv-unknown")


@pytest.mark.parametrize("fields, code, fragment", [
    ({"text": ""}, "bad_request", "must not be empty"),
    ({"text": "   \n "}, "bad_request", "must not be empty"),
    ({"text": "x" * 2001}, "too_large", "2000"),
    ({"text": 42}, "bad_request", "text"),
    ({"text": "hi\u0000there"}, "bad_request", "control"),
    ({"text": "hi", "clientMsgId": ""}, "bad_request", "clientMsgId"),
    ({"text": "hi", "clientMsgId": None}, "bad_request", "clientMsgId"),
    ({"text": "hi", "conversationId": "no spaces please"}, "bad_request", "conversationId"),
    ({"text": "hi", "attemptId": 7}, "bad_request", "attemptId"),
])
def test_bad_chat_messages_are_refused(hub, fields, code, fragment):
    with hub.client("candidate", uid("c")) as c:
        fields = {"clientMsgId": uid("m"), **fields}
        if fields["clientMsgId"] is None:
            del fields["clientMsgId"]
        err = c.error("chat.send", code, **fields)
        assert fragment in err["message"], err
        c.ping()
        c.assert_no_event()


def test_a_chat_flood_is_rate_limited(hub):
    with hub.client("candidate", uid("c")) as c:
        codes = [c.request("chat.send", text=f"hello {i}", clientMsgId=uid("m")) for i in range(14)]
        assert any(not r["ok"] and r["error"]["code"] == "rate_limited" for r in codes)
        c.ping()


def test_a_follow_up_inherits_the_previous_intent_in_its_conversation(hub):
    exam = secret_exam(hub)
    with hub.client("candidate", uid("c")) as c:
        aid = join(c, exam["id"])["attemptId"]
        first = chat(c, "how much time do I have left?", attemptId=aid)
        assert reply_of(c, first)["intent"] == "time_left"
        r = reply_of(c, chat(c, "and for question 2?", attemptId=aid, conversationId=first["conversationId"]))
        assert r["intent"] == "time_left" and "question 2" in r["text"], r
        # The same words in a new conversation have nothing to follow.
        r = reply_of(c, chat(c, "and for question 2?", attemptId=aid))
        assert r["intent"] != "time_left", r
