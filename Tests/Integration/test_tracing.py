"""Distributed tracing (issue 10): with `EXAMHUB_OTLP_ENDPOINT` set, spans for socket ops, store commits, LLM calls
and outbox deliveries reach a real local OTLP/HTTP receiver (JSON encoding), and W3C trace context travels to the
LLM provider and to webhooks in `traceparent`. Off by default: no span, no `traceparent`."""
from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from examkit import create_exam, join, save_ok, uid, wait_until
from fakellm import FakeLLM
from receivers import Receiver
from test_chat import answer_events, chat
from test_workers import SECRET, notifications_file

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$")


class OTLPReceiver:
    """`POST /v1/traces` with OTLP/JSON bodies: every span's name, trace id, span id, parent and attributes."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.content_types: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.content_types.add(self.headers.get("Content-Type", ""))
                    if self.path == "/v1/traces":
                        receiver._collect(json.loads(body))
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @staticmethod
    def _hex(value: str) -> str:
        if re.fullmatch(r"[0-9a-fA-F]+", value or "") and len(value) in (16, 32):
            return value.lower()
        return base64.b64decode(value).hex()

    def _collect(self, doc: dict) -> None:
        for rs in doc.get("resourceSpans", []):
            service = {a["key"]: a["value"].get("stringValue") for a in rs.get("resource", {}).get("attributes", [])}
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    attrs = {a["key"]: next(iter(a["value"].values()), None) for a in s.get("attributes", [])}
                    self.spans.append({
                        "name": s["name"], "trace": self._hex(s["traceId"]), "span": self._hex(s["spanId"]),
                        "parent": self._hex(s["parentSpanId"]) if s.get("parentSpanId") else None,
                        "attributes": attrs, "service": service.get("service.name"),
                        "error": s.get("status", {}).get("code") in (2, "STATUS_CODE_ERROR"),
                    })

    def named(self, name: str) -> list[dict]:
        with self._lock:
            return [s for s in self.spans if s["name"] == name]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def assert_within(otlp: OTLPReceiver, span_id: str, ancestor: dict) -> None:
    """The request's parent span is `ancestor` or one of its descendants (the HTTP client adds its own span)."""
    def check() -> bool:
        with otlp._lock:
            by_id = {s["span"]: s for s in otlp.spans}
        seen = span_id
        for _ in range(5):
            if seen == ancestor["span"]:
                return True
            seen = by_id.get(seen, {}).get("parent")
            if seen is None:
                return False
        return False
    wait_until(check, 5, what=f"span {span_id} under {ancestor['name']}")


@pytest.fixture
def otlp():
    r = OTLPReceiver()
    yield r
    r.close()


def test_spans_reach_the_collector_and_trace_context_reaches_the_llm_and_webhooks(start_hub, otlp, tmp_path):
    hook = Receiver()
    llm = FakeLLM()
    try:
        hub = start_hub({
            "EXAMHUB_OTLP_ENDPOINT": otlp.url, "EXAMHUB_OTLP_PROTOCOL": "http/json", "EXAMHUB_OTLP_EXPORT_MS": "100",
            "EXAMHUB_NOTIFICATIONS": str(notifications_file(tmp_path, hook.url, ["attempt.joined"])),
            "T1_WEBHOOK_SECRET": SECRET, "EXAMHUB_OUTBOX_POLL_MS": "50",
            "EXAMHUB_LLM_URL": llm.url, "EXAMHUB_LLM_MODEL": "fake-model", "EXAMHUB_LLM_API_KEY": "sk-test-1",
        })
        exam = create_exam(hub)
        with hub.client("candidate", uid("tr")) as c:
            aid = join(c, exam["id"])["attemptId"]
            save_ok(c, aid, "q-text", "traced draft")
            sent = chat(c, "what is the capital of France?")
            assert answer_events(c, sent)[-1]["type"] == "chat.done"
            c.error("attempt.join", "not_found", examId="no-such-exam")

        wait_until(lambda: otlp.named("examhub.outbox.deliver") and otlp.named("examhub.llm.request")
                   and otlp.named("examhub.store.commit"), 15, what="spans at the collector")
        assert "application/json" in otlp.content_types
        # The refused join is the last op sent: its span may come in the export after the others.
        wait_until(lambda: any(s["error"] for s in otlp.named("examhub.op attempt.join")), 5,
                   what="the refused join's span")
        joins = otlp.named("examhub.op attempt.join")
        assert len(joins) >= 2 and sum(s["error"] for s in joins) == 1, joins  # the join reads state in a second step
        assert {s["service"] for s in otlp.spans} == {"examhub"}
        assert otlp.named("examhub.store.commit")[0]["attributes"]["examhub.saves"] in (1, "1")

        # The LLM provider got the trace context of its span.
        [llm_span] = otlp.named("examhub.llm.request")[:1]
        parents = [TRACEPARENT.match(h.get("traceparent", "")) for h in llm.headers]
        assert parents and parents[0], llm.headers
        assert parents[0].group(1) == llm_span["trace"]
        assert_within(otlp, parents[0].group(2), llm_span)
        assert llm_span["attributes"]["examhub.llm.provider"]

        # So did the webhook receiver, from the delivery span.
        wait_until(lambda: hook.ok(), 10, what="the webhook")
        m = TRACEPARENT.match(hook.ok()[0].headers.get("traceparent", ""))
        assert m, hook.ok()[0].headers
        wait_until(lambda: any(s["trace"] == m.group(1) for s in otlp.named("examhub.outbox.deliver")), 5,
                   what="the delivery span of the webhook's trace")
        delivery = next(s for s in otlp.named("examhub.outbox.deliver") if s["trace"] == m.group(1))
        assert_within(otlp, m.group(2), delivery)
    finally:
        hook.close()
        llm.close()


def test_tracing_is_off_by_default_and_a_bad_endpoint_is_refused(start_hub, tmp_path):
    from hubclient import run_cli
    r = run_cli("serve", env={"EXAMHUB_OTLP_ENDPOINT": "collector:4318", "EXAMHUB_PORT": "0",
                              "EXAMHUB_DATABASE_URL": f"sqlite://{tmp_path}/db.sqlite"}, timeout=30)
    assert r.returncode != 0 and "EXAMHUB_OTLP_ENDPOINT must be an http:// or https:// URL" in r.stderr
    r = run_cli("serve", env={"EXAMHUB_OTLP_ENDPOINT": "http://127.0.0.1:9", "EXAMHUB_OTLP_PROTOCOL": "grpc",
                              "EXAMHUB_PORT": "0", "EXAMHUB_DATABASE_URL": f"sqlite://{tmp_path}/db2.sqlite"}, timeout=30)
    assert r.returncode != 0 and "EXAMHUB_OTLP_PROTOCOL must be http/protobuf or http/json" in r.stderr
