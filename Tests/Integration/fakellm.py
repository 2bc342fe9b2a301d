"""A local OpenAI-compatible server for the assistant's end-to-end tests: `POST /v1/chat/completions` answered with
the real streaming wire format (server-sent events in chunked encoding: a role chunk, content deltas, a finish
chunk, a usage chunk with empty choices, `data: [DONE]`), as in ../shared/data/llm-streams/openai_chat_stream_usage.txt.

What it does is chosen by markers in the last user message:
- `[429]`: the first request with this marker gets 429 (Retry-After: 0), the next ones answer;
- `[500]`: always 500;
- `[cut]`: two deltas, then the connection is dropped without the end of the stream;
- `[slow]`: forty deltas, 0.25 s apart (time to cancel or disconnect);
- otherwise a short answer in a few deltas.
Every request body is recorded (`requests`), and whether the client went away before the end (`disconnects`)."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = "Paris is the capital of France, on the Seine."


class FakeLLM:
    def __init__(self):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.disconnects = 0
        self.completed = 0
        self._seen_429: set[str] = set()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.requests.append(body)
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path != "/v1/chat/completions":
                    return self._plain(404, {"error": {"message": "no such route"}})
                last = next((m["content"] for m in reversed(body.get("messages", [])) if m["role"] == "user"), "")
                if "[500]" in last:
                    return self._plain(500, {"error": {"message": "boom", "type": "server_error"}})
                if "[429]" in last:
                    with fake._lock:
                        first = last not in fake._seen_429
                        fake._seen_429.add(last)
                    if first:
                        return self._plain(429, {"error": {"message": "slow down", "type": "rate_limit"}},
                                           {"Retry-After": "0"})
                if "[slow]" in last:
                    return self._stream([f"word{i} " for i in range(40)], delay=0.25)
                if "[cut]" in last:
                    return self._stream(["Half ", "an answer"], cut=True)
                words = ANSWER.split(" ")
                return self._stream([w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)])

            def _plain(self, status, doc, headers=None):
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _chunk(self, text: str):
                data = text.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _event(self, doc):
                self._chunk("data: " + (doc if isinstance(doc, str) else json.dumps(doc)) + "\n\n")

            def _stream(self, pieces, delay=0.01, cut=False):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": int(time.time()),
                        "model": "fake-model"}
                try:
                    self._event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                      "finish_reason": None}]})
                    for piece in pieces:
                        time.sleep(delay)
                        self._event({**base, "choices": [{"index": 0, "delta": {"content": piece},
                                                          "finish_reason": None}]})
                    if cut:
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    self._event({**base, "choices": [], "usage": {"prompt_tokens": 42, "completion_tokens": len(pieces),
                                                                  "total_tokens": 42 + len(pieces)}})
                    self._event("[DONE]")
                    self._chunk("")
                    with fake._lock:
                        fake.completed += 1
                except (BrokenPipeError, ConnectionResetError):
                    with fake._lock:
                        fake.disconnects += 1
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def user_messages(self) -> list[str]:
        """The last user message of every request, in order."""
        return [next((m["content"] for m in reversed(r["messages"]) if m["role"] == "user"), "") for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
