"""The load tester's scenarios (`examhub-load run LoadTests/scenarios/*.yaml`) against a real hub, small: each runs
end to end, its JSON summary holds real counts and latencies, and its correctness checks fail when the server really
loses something (a hub whose recovery history is too short, a peer that drops broadcasts)."""
from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from pathlib import Path

import pytest
from hubclient import binary_path

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "LoadTests" / "scenarios"
FAST = {"EXAMHUB_RATE_LIMIT": "100000", "EXAMHUB_RATE_BURST": "100000"}


def load_binary() -> Path:
    path = binary_path().parent / "examhub-load"
    assert path.is_file(), f"no examhub-load next to {binary_path()}: swift build"
    return path


def run(scenario: str, port: int, *sets: str, secret: str | None = None, peer: bool = False,
        tmp: Path, timeout: float = 120) -> tuple[int, dict | None, str]:
    out = tmp / f"{scenario}-{len(list(tmp.iterdir()))}.json"
    cmd = [str(load_binary()), "run", str(SCENARIOS / f"{scenario}.yaml"), "--port", str(port), "--progress", "0",
           "--json", str(out)]
    for s in sets:
        cmd += ["--set", s]
    if peer:
        cmd.append("--peer")
    if secret:
        cmd += ["--secret", secret]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    result = json.loads(out.read_text()) if out.exists() else None
    return p.returncode, result, p.stdout + p.stderr


def assert_latencies(op: dict) -> None:
    assert op["count"] > 0
    assert 0 < op["p50Ms"] <= op["p90Ms"] <= op["p99Ms"] <= op["p999Ms"] <= op["maxMs"] + 0.01


@pytest.fixture
def fast_hub(start_hub):
    return start_hub(FAST)


def test_echo_and_ping_time_every_message(fast_hub, tmp_path):
    rc, r, out = run("echo", fast_hub.port, "connections=4", "inFlight=4", "warmup=0.5", "duration=1", tmp=tmp_path)
    assert rc == 0, out
    assert r["passed"] and r["errors"] == {} and r["kind"] == "echo"
    assert_latencies(r["ops"]["echo"])
    assert r["ops"]["echo"]["count"] == r["messages"] > 100
    assert r["clientCpuSeconds"] > 0
    rc, r, out = run("ping", fast_hub.port, "connections=4", "inFlight=4", "warmup=0.5", "duration=1",
                     secret=fast_hub.secret, tmp=tmp_path)
    assert rc == 0, out
    assert_latencies(r["ops"]["ping"])
    assert "operation" in out and "PASSED" in out


def test_broadcast_on_the_hub_delivers_every_save_to_every_subscriber(fast_hub, tmp_path):
    rc, r, out = run("broadcast", fast_hub.port, "subscribers=20", "rate=40", "warmup=0.5", "duration=2", "drain=1",
                     secret=fast_hub.secret, tmp=tmp_path)
    assert rc == 0, out
    assert r["published"] > 40
    assert r["expectedDeliveries"] == r["published"] * 20 == r["receivedDeliveries"]
    assert r["lostDeliveries"] == 0 and r["checks"]["seq_gap"] == 0
    assert_latencies(r["ops"]["broadcast delivery"])
    assert_latencies(r["ops"]["answer.save"])


def test_exam_wave_joins_saves_chats_and_submits_everyone(fast_hub, tmp_path):
    rc, r, out = run("exam-wave", fast_hub.port, "candidates=30", "ramp=1.5", "duration=4", "saveEvery=0.5",
                     "chatEvery=2", "submitWindow=1", secret=fast_hub.secret, tmp=tmp_path)
    assert rc == 0, out
    assert r["submitted"] == 30
    ops = r["ops"]
    assert ops["attempt.join"]["count"] == 30 and ops["attempt.submit"]["count"] == 30
    for name in ("connect", "attempt.join", "answer.save", "telemetry", "chat.send", "chat answer (first event)",
                 "attempt.submit"):
        assert_latencies(ops[name])
    assert r["checks"]["version_not_increasing"] == 0


def test_proctor_room_times_flags_at_the_proctor(fast_hub, tmp_path):
    rc, r, out = run("proctor-room", fast_hub.port, "proctors=2", "roomSize=10", "flagRatio=0.3", "warmup=1",
                     "duration=3", secret=fast_hub.secret, tmp=tmp_path)
    assert rc == 0, out
    assert r["setup"]["proctor.watch"]["count"] == 2 and r["setup"]["attempt.join"]["count"] == 20
    assert_latencies(r["ops"]["telemetry->flag.raised"])
    assert r["checks"]["unmatched_flag"] == 0


def test_reconnect_storm_finds_every_acknowledged_save_again(fast_hub, tmp_path):
    rc, r, out = run("reconnect-storm", fast_hub.port, "candidates=20", "storms=2", "stormEvery=1.5", "jitter=0.3",
                     "saveEvery=0.2", "warmup=0.5", secret=fast_hub.secret, tmp=tmp_path)
    assert rc == 0, out
    assert r["ops"]["reconnect+recover"]["count"] == 40
    assert r["savesVerifiedAfterDrops"] > 40
    assert r["warningsSent"] == r["warningsReceived"] == 40
    assert len(r["stormSeconds"]) == 2
    assert all(v == 0 for v in r["checks"].values())


def test_reconnect_storm_fails_when_the_hub_cannot_recover(start_hub, tmp_path):
    """A hub keeping 2 events per channel cannot replay what a candidate saved while away: the run must say so."""
    hub = start_hub({**FAST, "EXAMHUB_HISTORY_SIZE": "2"})
    rc, r, out = run("reconnect-storm", hub.port, "candidates=10", "storms=1", "stormEvery=2", "jitter=0.6",
                     "warnings=3", "saveEvery=0.1", "warmup=0.5", secret=hub.secret, tmp=tmp_path)
    assert rc == 1, out
    assert r["passed"] is False
    assert r["checks"]["not_recovered"] > 0 and r["checks"]["warning_not_received"] > 0
    assert "FAILED" in out


class LossyBroadcastPeer:
    """A /v1/broadcast peer (websockets) that forwards messages to every other socket but drops every 10th."""

    def __init__(self):
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _run(self):
        from websockets.asyncio.server import serve

        clients = set()
        count = 0

        async def handler(ws):
            nonlocal count
            clients.add(ws)
            try:
                async for msg in ws:
                    count += 1
                    if count % 10 == 0:
                        continue
                    for c in list(clients):
                        if c is not ws:
                            await c.send(msg)
            finally:
                clients.discard(ws)

        async def main():
            async with serve(handler, "127.0.0.1", 0, compression=None) as server:
                self.port = server.sockets[0].getsockname()[1]
                self._ready.set()
                await asyncio.Future()

        self._loop.run_until_complete(main())


def test_broadcast_checks_catch_a_peer_that_loses_messages(tmp_path):
    peer = LossyBroadcastPeer()
    rc, r, out = run("broadcast", peer.port, "subscribers=5", "rate=50", "warmup=0.3", "duration=1", "drain=0.5",
                     peer=True, tmp=tmp_path)
    assert rc == 1, out
    assert r["checks"]["seq_gap"] > 0
    assert r["lostDeliveries"] >= r["published"] // 10 * 5 - 5
    assert r["checks"]["lost_delivery"] == r["lostDeliveries"]


@pytest.mark.parametrize("args, message", [
    (["--set", "candidatez=5"], "unknown key `candidatez` for exam-wave"),
    (["--set", "candidates"], "expected key=value"),
    (["--set", "ramp=-1"], "`ramp` must be a number >= 0"),
    (["--set", "candidates=1.5"], "`candidates` must be a whole number"),
    (["--peer"], "peers only do echo, broadcast and idle"),
])
def test_bad_scenario_input_is_refused_clearly(args, message, tmp_path):
    p = subprocess.run([str(load_binary()), "run", str(SCENARIOS / "exam-wave.yaml"), "--secret", "x" * 32, *args],
                       capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert p.returncode != 0
    assert message in p.stderr + p.stdout


def test_unknown_kind_and_unreadable_files_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: stampede\ncandidates: 5\n")
    p = subprocess.run([str(load_binary()), "run", str(bad)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "unknown kind `stampede`" in p.stderr
    p = subprocess.run([str(load_binary()), "run", str(tmp_path / "missing.yaml")], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0 and "cannot read scenario file" in p.stderr


def test_every_scenario_file_parses(tmp_path):
    """Each shipped file names a known kind and only known keys (a bad --set is refused before any connect, so the
    file's own keys were accepted when the error names the override)."""
    files = sorted(SCENARIOS.glob("*.yaml"))
    assert {f.stem for f in files} >= {"echo", "ping", "broadcast", "exam-wave", "proctor-room", "reconnect-storm",
                                        "idle"}
    for f in files:
        p = subprocess.run([str(load_binary()), "run", str(f), "--set", "nosuchkey=1"], capture_output=True,
                           text=True, timeout=30)
        assert "unknown key `nosuchkey`" in p.stderr, (f, p.stderr)


def test_load_tester_drives_a_peer_the_way_compare_sh_does(tmp_path):
    """echo and broadcast with --peer against Node's `ws` peer, started by LoadTests/Peers/start.sh as compare.sh
    starts it; the server CPU is read from its pid."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["bash", str(ROOT / "LoadTests" / "Peers" / "start.sh"), "node-ws", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on" in line, line
        rc, r, out = run("echo", port, "connections=4", "inFlight=4", "warmup=0.3", "duration=1", peer=True,
                         tmp=tmp_path)
        assert rc == 0, out
        assert r["target"] == "peer" and r["ops"]["echo"]["count"] > 100
        rc, r, out = run("broadcast", port, "subscribers=30", "rate=100", "warmup=0.3", "duration=1", "drain=0.5",
                         peer=True, tmp=tmp_path)
        assert rc == 0, out
        assert r["receivedDeliveries"] == r["published"] * 30 > 0
        cmd = [str(load_binary()), "run", str(SCENARIOS / "echo.yaml"), "--port", str(port), "--peer", "--progress",
               "0", "--server-pid", str(proc.pid), "--set", "connections=2", "--set", "duration=1", "--set", "warmup=0.2"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        summary = json.loads(p.stdout.strip().splitlines()[-1])
        assert summary["serverCpuSeconds"] > 0 and summary["messagesPerServerCpuSecond"] > 0
        time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_server_that_is_not_there_is_reported_at_once(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.run([str(load_binary()), "run", str(SCENARIOS / "echo.yaml"), "--port", str(port),
                        "--set", "connections=3", "--set", "duration=30"], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert f"no socket could be opened to 127.0.0.1:{port}/v1/echo" in p.stderr
