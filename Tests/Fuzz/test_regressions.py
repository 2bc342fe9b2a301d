"""Replays every saved fuzz input (Tests/Fuzz/seeds and every crash a fuzzing run ever found, in
Tests/Fuzz/regressions) through the plain build of `examhub-fuzz`: each must be handled, never crash."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TARGETS = ["envelope", "intents", "profile", "telemetry"]


def fuzz_binary() -> Path:
    hub = Path(os.environ.get("EXAMHUB_BIN", HERE.parents[1] / ".build/debug/examhub"))
    return hub.with_name("examhub-fuzz")


@pytest.mark.parametrize("target", TARGETS)
def test_saved_inputs_replay_without_a_crash(target):
    files = sorted(p for d in ("seeds", "regressions") for p in (HERE / d / target).glob("*") if p.is_file())
    assert files, f"no saved inputs for {target}"
    proc = subprocess.run([str(fuzz_binary()), target, *map(str, files)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"{target}: {len(files)} inputs replayed, no crash" in proc.stdout


def test_the_replayer_refuses_an_unknown_target():
    proc = subprocess.run([str(fuzz_binary()), "nothing"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "usage" in proc.stderr
