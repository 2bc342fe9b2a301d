"""Outbox throughput (issue 6): events per second from the outbox to a local webhook receiver, end to end.

Loads N events into a fresh store (SQLite, or PostgreSQL when --postgres is given: a temporary server started
with the test helper), runs `examhub worker notifications` (W processes) against a fast asyncio receiver that
checks every signature, and prints events/s, the workers' CPU, and duplicates. Usage:

    python3 LoadTests/outbox/bench_outbox.py --bin .build/release/examhub --events 20000 [--workers 2] [--postgres]
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRET = "bench-webhook-secret-0123456789"


class FastReceiver:
    """HTTP/1.1 keep-alive receiver on asyncio: answers 200, verifies every signature, counts event ids."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.bad = 0
        self.first: float | None = None
        self.last: float = 0.0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._conn, "127.0.0.1", 0, backlog=512))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.split(b"\r\n")[1:]:
                    if b":" in line:
                        k, v = line.split(b":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                sig = dict(p.split(b"=", 1) for p in headers.get(b"x-examhub-signature", b"").split(b","))
                expected = hmac.new(SECRET.encode(), sig.get(b"t", b"") + b"." + body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected.encode(), sig.get(b"v1", b"")):
                    self.bad += 1
                event_id = headers.get(b"x-examhub-event-id", b"").decode()
                self.ids[event_id] = self.ids.get(event_id, 0) + 1
                now = time.monotonic()
                self.first = self.first or now
                self.last = now
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass
        finally:
            writer.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def payload(i: int) -> tuple[str, str]:
    if i % 3 == 0:
        return "attempt.joined", json.dumps({"attemptId": f"a-{i}", "examId": "e-bench", "candidate": f"c{i}"})
    return "answers.saved", json.dumps({"attemptId": f"a-{i - i % 3}", "count": random.randint(1, 4)})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / ".build/release/examhub"))
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--postgres", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="examhub-outbox-bench-"))
    pg = None
    if args.postgres:
        sys.path.insert(0, str(ROOT / "Tests/Integration"))
        from pgserver import PostgresServer
        pg = PostgresServer()
        url = pg.create_database()
    else:
        url = f"sqlite://{tmp}/bench.db"
    receiver = FastReceiver()
    (tmp / "n.yaml").write_text(
        f"tenants:\n  t1:\n    webhooks:\n      - url: http://127.0.0.1:{receiver.port}/hook\n        secret: {SECRET}\n")
    env = {"PATH": os.environ["PATH"], "EXAMHUB_DATABASE_URL": url, "EXAMHUB_NOTIFICATIONS": str(tmp / "n.yaml"),
           "EXAMHUB_NOTIFY_CONCURRENCY": str(args.concurrency), "EXAMHUB_OUTBOX_BATCH": str(args.batch),
           "EXAMHUB_OUTBOX_POLL_MS": "20", "EXAMHUB_LOG_LEVEL": "warning"}
    subprocess.run([args.bin, "migrate"], env=env, check=True, capture_output=True)

    now = int(time.time() * 1000)
    rows = [(f"ev-bench-{i}", "t1", *payload(i), now + i) for i in range(args.events)]
    rows = [(r[0], r[1], r[2], r[4], r[3]) for r in rows]
    if pg is None:
        db = sqlite3.connect(f"{tmp}/bench.db")
        db.executemany("INSERT INTO outbox (id, tenant, type, at_ms, payload) VALUES (?, ?, ?, ?, ?)", rows)
        db.commit()
        db.close()
    else:
        lines = "".join("\t".join(map(str, r)) + "\n" for r in rows)
        dbname = url.rsplit("/", 1)[1]
        subprocess.run(["psql", "-h", str(pg.dir), "-p", str(pg.port), "-U", "postgres", "-d", dbname, "-q", "-c",
                        "COPY outbox (id, tenant, type, at_ms, payload) FROM STDIN"], input=lines, text=True, check=True)

    started = time.monotonic()
    procs = [subprocess.Popen([args.bin, "worker", "notifications"], env=env, stderr=subprocess.PIPE)
             for _ in range(args.workers)]
    deadline = started + 300
    while len(receiver.ids) < args.events and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    cpu = sum(cpu_seconds(p.pid) for p in procs)
    for p in procs:
        p.terminate()
        p.wait(timeout=20)
    delivered = len(receiver.ids)
    dupes = sum(v - 1 for v in receiver.ids.values())
    store = "postgresql" if pg else "sqlite"
    window = (receiver.last - receiver.first) if receiver.first else 0
    print(json.dumps({
        "store": store, "workers": args.workers, "events": args.events, "delivered": delivered, "duplicates": dupes,
        "bad_signatures": receiver.bad, "seconds": round(elapsed, 2),
        "events_per_sec": round(delivered / elapsed), "events_per_sec_steady": round(delivered / window) if window else None,
        "worker_cpu_sec": round(cpu, 2), "events_per_worker_cpu_sec": round(delivered / cpu) if cpu else None,
    }))
    if pg:
        pg.close()


if __name__ == "__main__":
    main()
