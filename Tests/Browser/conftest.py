"""Fixtures of the browser suite (helpers in browserkit.py): the hub, two headless Chromium browsers (candidate
and proctor), a folder for screenshots."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browserkit import HubPool, binary_path, make_driver, set_offline  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _binary_exists():
    path = binary_path()
    assert path.is_file() and os.access(path, os.X_OK), (
        f"no examhub binary at {path}: build it (swift build) or set EXAMHUB_BIN")


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    """A dev-mode hub with a known secret."""
    pool = HubPool(tmp_path_factory.mktemp("browser-hub"))
    yield pool.start()
    pool.stop_all()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("browser-artifacts")
    print(f"\nbrowser test artifacts (screenshots): {path}")
    return path


@pytest.fixture(scope="session")
def candidate_browser():
    driver = make_driver()
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def proctor_browser():
    driver = make_driver()
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def _network_back(request):
    """Whatever a test did to the candidate's network, the next one starts online."""
    yield
    if "candidate_browser" in request.fixturenames:
        set_offline(request.getfixturevalue("candidate_browser"), False)


