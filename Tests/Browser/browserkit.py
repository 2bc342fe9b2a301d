"""Helpers of the browser suite (the fixtures are in conftest.py): a real `examhub serve` (dev mode, port 0; the
`Hub` class of Tests/Integration/hubclient.py) and headless Chromium driven by Selenium (Debian's `chromium` and
`chromium-driver`; `.ci/run` installs them).

Two browsers, not two tabs: the candidate's network can be cut (DevTools offline emulation) and its tab hidden
without touching the proctor's. Screenshots go to the session's temporary folder (`artifacts`); each path is
printed (`pytest -s` shows them).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "Integration"))
from hubclient import Hub, binary_path  # noqa: E402

# The integration suite's HubPool (SIGTERM at teardown, exit code 0 asserted), loaded under its own name.
_spec = importlib.util.spec_from_file_location("integration_conftest", HERE.parent / "Integration" / "conftest.py")
_integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_integration)
HubPool = _integration.HubPool

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TENANT = "demo"


def _find(names: list[str], env: str) -> str:
    if os.environ.get(env):
        return os.environ[env]
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError(f"none of {names} found: apt-get install chromium chromium-driver (or set {env})")


def make_driver() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = _find(["chromium", "chromium-browser", "google-chrome"], "CHROME_BIN")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860",
                "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(_find(["chromedriver"], "CHROMEDRIVER")), options=options)
    driver.set_script_timeout(60)
    driver.execute_cdp_cmd("Network.enable", {})
    return driver


def base_url(hub: Hub) -> str:
    return f"http://{hub.host}:{hub.port}"


def set_offline(driver, offline: bool) -> None:
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})


def wait_for(driver, what: str, fn, timeout: float = 10):
    """Waits until `fn(driver)` is truthy (polling every 50 ms); the message names what was awaited."""
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: fn(d), message=what)


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def admin_http(hub: Hub, method: str, path: str, body: dict | None = None):
    token = hub.token("admin", sub="browser-admin", tenant=TENANT)
    status, headers, raw = hub.http(method, path, headers={"Authorization": f"Bearer {token}",
                                                         "Content-Type": "application/json"},
                                    body=json.dumps(body).encode() if body is not None else None)
    return status, json.loads(raw or b"null")


def screenshot(driver, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def browser_log(driver) -> str:
    try:
        return "\n".join(e["message"] for e in driver.get_log("browser"))
    except Exception:  # noqa: BLE001 - the log is only a diagnostic
        return ""


def now_ms() -> int:
    return int(time.time() * 1000)
