"""Security properties that cut across the ops (issue 9): per-IP connection limits, and secrets and answers kept
out of the logs."""
from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from examkit import create_exam, join, uid, wait_until
from hubclient import refused_status


def test_connections_per_ip_are_limited_when_configured(start_hub):
    hub = start_hub({"EXAMHUB_MAX_CONNECTIONS_PER_IP": "3"})
    sockets = [hub.client("candidate", uid("c")) for _ in range(3)]
    try:
        with pytest.raises(InvalidStatus) as excinfo:
            hub.connect()
        status, body = refused_status(excinfo)
        assert status == 429 and body["error"]["code"] == "rate_limited", (status, body)
        for s in sockets:
            s.ping()  # the ones already in are not affected
        sockets.pop().close()

        def one_more_fits():
            try:
                c = hub.client("candidate", uid("c"))
            except InvalidStatus:
                return False
            sockets.append(c)
            return True
        wait_until(one_more_fits, 5, what="a freed slot reused")
    finally:
        for s in sockets:
            s.close()


def test_no_limit_per_ip_by_default(hub):
    sockets = [hub.connect() for _ in range(20)]
    for s in sockets:
        s.close()


def test_tokens_answers_and_chat_text_never_reach_the_logs(start_hub):
    hub = start_hub({"EXAMHUB_LOG_LEVEL": "info"})
    exam = create_exam(hub)
    secret_answer = "ANSWER-" + uid("v")
    secret_chat = "CHAT-" + uid("t")
    token = hub.token("candidate", uid("c"))
    with hub.connect() as c:
        c.hello(token)
        aid = join(c, exam["id"])["attemptId"]
        assert c.ok("answer.save", attemptId=aid, qid="q-text", value=secret_answer, opId=uid("op"))["version"] == 1
        c.ok("chat.send", text=f"how much time is left {secret_chat}", clientMsgId=uid("m"), attemptId=aid)
        c.event()
        bad = token[:-4] + "AAAA"
        c.error("refresh", "unauthorized", token=bad)  # a refused token is logged as refused, not printed
    hub.stop()
    log = hub.stderr_path.read_text(errors="replace")
    assert log, "the hub logged nothing at all"
    for secret in (token, token.split(".")[2], bad, secret_answer, secret_chat, hub.secret):
        assert secret not in log, f"{secret[:12]}… appears in the log"
