"""permessage-deflate with a real browser: headless Chromium offers it on its own, the hub accepts, and both
directions are compressed (the hub's /metrics counts the bytes)."""
from __future__ import annotations

import re

from browserkit import TENANT, admin_http, base_url


def compression_bytes(hub) -> dict[tuple[str, str], int]:
    _, _, body = hub.http("GET", "/metrics")
    out = {}
    for line in body.decode().splitlines():
        m = re.match(r'examhub_compression_bytes_total\{(.*)\} (\d+)', line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            out[(labels["direction"], labels["form"])] = int(m.group(2))
    return out


def test_chromium_negotiates_and_round_trips(hub, candidate_browser):
    driver = candidate_browser
    exam_id = "e-deflate-browser"
    status, doc = admin_http(hub, "POST", "/v1/exams", {
        "id": exam_id, "title": "Compression", "durationSec": 3600,
        "questions": [{"id": f"q{i}", "type": "text", "prompt": f"Explain step {i} of the argument"} for i in range(20)]})
    assert status == 201, doc
    token = hub.token("candidate", sub="deflate-browser", tenant=TENANT)
    before = compression_bytes(hub)
    driver.get(base_url(hub) + "/healthz")  # any page of the hub's origin
    result = driver.execute_async_script("""
        const [url, token, examId, done] = arguments;
        const ws = new WebSocket(url, ['examhub.v1.json']);
        const replies = {};
        ws.onerror = () => done({error: 'socket error'});
        ws.onopen = () => ws.send(JSON.stringify({op: 'hello', id: 1, token}));
        ws.onmessage = (m) => {
            const f = JSON.parse(m.data);
            if (f.op !== 'reply') return;
            replies[f.id] = f;
            if (f.id === 1) ws.send(JSON.stringify({op: 'attempt.join', id: 2, examId}));
            if (f.id === 2) ws.send(JSON.stringify({op: 'answer.save', id: 3, attemptId: f.data.attemptId, qid: 'q1',
                value: 'Because the sequence is bounded and monotone, it converges. '.repeat(20), opId: 'b-1'}));
            if (f.id === 3) { done({extensions: ws.extensions, replies}); ws.close(); }
        };
    """, f"ws://{hub.host}:{hub.port}/v1/socket", token, exam_id)
    assert "error" not in result, result
    assert result["extensions"].startswith("permessage-deflate; server_no_context_takeover"), result["extensions"]
    assert all(result["replies"][k]["ok"] for k in ("1", "2", "3")), result["replies"]
    assert len(result["replies"]["2"]["data"]["questions"]) == 20
    after = compression_bytes(hub)
    grew = {k: after[k] - before.get(k, 0) for k in after}
    # Chromium compressed what it sent (the save repeats itself: far fewer bytes on the wire); the hub compressed
    # the join reply, which Chromium inflated (its questions arrived above).
    assert grew[("in", "raw")] > 1200 and grew[("in", "wire")] < grew[("in", "raw")] / 3, grew
    assert grew[("out", "raw")] > 1000 and grew[("out", "wire")] < grew[("out", "raw")], grew
