"""Unit tests of examhub.js itself, run in Chromium against a real hub: Tests/Browser/unit/examhub.test.js, loaded
into a page of the hub's origin, imports /client/examhub.js and runs each case; one pytest test per case."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from browserkit import TENANT, admin_http, base_url, browser_log
from examkit import exam_def, uid

SOURCE = (Path(__file__).resolve().parent / "unit" / "examhub.test.js").read_text()
CASES = re.findall(r'^await test\("([a-z_0-9]+)"', SOURCE, flags=re.M)


@pytest.fixture(scope="module")
def unit_results(hub, candidate_browser):
    exam = exam_def()
    status, body = admin_http(hub, "POST", "/v1/exams", exam)
    assert status == 201, body
    driver = candidate_browser
    driver.get(base_url(hub) + "/healthz")
    config = {
        "moduleURL": base_url(hub) + "/client/examhub.js",
        "socketURL": f"ws://{hub.host}:{hub.port}/v1/socket",
        "examId": exam["id"],
        "candidate": hub.token("candidate", sub=uid("unit-cand"), tenant=TENANT),
        "proctor": hub.token("proctor", sub="unit-proctor", tenant=TENANT),
        "admin": hub.token("admin", sub="unit-admin", tenant=TENANT),
    }
    script = ("const config = arguments[0]; const done = arguments[arguments.length - 1];\n"
              "(async () => {\n" + SOURCE + "\n})().then(done, (e) => done([{name: 'load', ok: false, "
              "error: String(e && e.stack || e)}]));")
    results = driver.execute_async_script(script, config)
    return {r["name"]: r for r in results}, browser_log(driver)


def test_every_case_ran(unit_results):
    results, log = unit_results
    assert "load" not in results, results["load"]["error"] + "\n" + log
    assert sorted(results) == sorted(CASES)
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES)
def test_unit(unit_results, case):
    results, log = unit_results
    assert case in results, f"{case} did not run: {results.get('load')}"
    assert results[case]["ok"], results[case].get("error", "") + "\n" + log[-2000:]
