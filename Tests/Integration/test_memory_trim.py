"""`EXAMHUB_MALLOC_TRIM_SEC`: the hub hands freed heap memory back to the system on a schedule (glibc keeps it in
per-thread arenas otherwise, and RSS creeps under churn; see the README's "Soak"), and refuses a bad value."""
from __future__ import annotations

import re
import subprocess
import time

from hubclient import binary_path, clean_env


def test_the_hub_trims_on_schedule_and_logs_what_it_gave_back(start_hub):
    hub = start_hub({"EXAMHUB_MALLOC_TRIM_SEC": "0.2", "EXAMHUB_LOG_LEVEL": "debug"})
    deadline = time.monotonic() + 10
    lines: list[str] = []
    while time.monotonic() < deadline and len(lines) < 3:
        time.sleep(0.2)
        lines = [l for l in hub.stderr_tail(200_000).splitlines() if "returned freed heap memory to the system" in l]
    assert len(lines) >= 3, hub.stderr_tail()
    m = re.search(r"examhub\.rss_after_bytes=(\d+) examhub\.rss_before_bytes=(\d+)", lines[-1])
    assert m and int(m.group(1)) > 1_000_000 and int(m.group(2)) > 1_000_000, lines[-1]
    assert "examhub.released=" in lines[-1] and "examhub.trim_ms=" in lines[-1]


def test_zero_turns_it_off(start_hub):
    hub = start_hub({"EXAMHUB_MALLOC_TRIM_SEC": "0", "EXAMHUB_LOG_LEVEL": "debug"})
    time.sleep(1)
    assert "returned freed heap memory" not in hub.stderr_tail(200_000)


def test_a_bad_value_is_refused_at_start(tmp_path):
    for bad in ("-1", "0.01", "soon"):
        proc = subprocess.run([str(binary_path()), "serve"], capture_output=True, text=True, timeout=30,
                              cwd=tmp_path, env=clean_env(EXAMHUB_MALLOC_TRIM_SEC=bad, EXAMHUB_PORT="0",
                                                          EXAMHUB_DATABASE_URL=f"sqlite://{tmp_path}/db.sqlite"))
        assert proc.returncode != 0
        assert "EXAMHUB_MALLOC_TRIM_SEC" in proc.stderr, proc.stderr
