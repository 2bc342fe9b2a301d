"""The demo pages in headless Chromium against a real hub: autosave through a network cut and a reload, a hidden
tab raising `tab_switching` on the proctor's page, proctor warnings and pauses on the candidate's page."""
from __future__ import annotations

from selenium.webdriver.common.by import By

from browserkit import TENANT, admin_http, base_url, browser_log, js, screenshot, set_offline, wait_for
from examkit import exam_def, uid

TAB_RULE = {"code": "tab_switching", "severity": "warning", "type": "count", "event": "visibility.hidden",
            "count": 1, "windowSec": 60}


def create_exam(hub, **extra) -> str:
    exam = exam_def(**extra)
    status, body = admin_http(hub, "POST", "/v1/exams", exam)
    assert status == 201, body
    return exam["id"]


def server_answers(hub, attempt_id: str) -> dict:
    status, body = admin_http(hub, "GET", f"/v1/attempts/{attempt_id}")
    assert status == 200, body
    return {qid: a["value"] for qid, a in body["answers"].items()}


def open_candidate(hub, driver, exam_id: str, sub: str) -> None:
    driver.get(f"{base_url(hub)}/demo/candidate?exam={exam_id}&sub={sub}")
    wait_for(driver, "candidate page ready", lambda d: js(d, "return document.body.dataset.ready") in ("1", "error"))
    assert js(driver, "return document.body.dataset.ready") == "1", browser_log(driver)


def status_of(driver, qid: str) -> str:
    return driver.find_element(By.ID, f"status-{qid}").get_attribute("data-status")


def wait_status(driver, qid: str, status: str, timeout: float = 10) -> None:
    wait_for(driver, f"{qid} {status}", lambda d: status_of(d, qid) == status, timeout)


def wait_conn(driver, state: str) -> None:
    wait_for(driver, f"connection {state}",
             lambda d: d.find_element(By.ID, "conn").get_attribute("data-state") == state)


def test_answers_typed_while_offline_are_saved_when_the_network_returns(hub, candidate_browser, artifacts):
    d = candidate_browser
    exam_id, sub = create_exam(hub), uid("cand")
    open_candidate(hub, d, exam_id, sub)
    wait_conn(d, "open")
    d.find_element(By.ID, "q-q-single-1").click()
    text = d.find_element(By.ID, "q-q-text")
    text.send_keys("online words")
    wait_status(d, "q-single", "saved")
    wait_status(d, "q-text", "saved")
    attempt_id = js(d, "return examhubDemo.session.attemptId")
    assert server_answers(hub, attempt_id) == {"q-single": "B", "q-text": "online words"}

    set_offline(d, True)
    wait_conn(d, "offline")
    text.send_keys(" and offline words")
    d.find_element(By.ID, "q-q-number").send_keys("42")
    d.find_element(By.ID, "q-q-multi-0").click()
    d.find_element(By.ID, "q-q-multi-2").click()
    for qid in ("q-text", "q-number", "q-multi"):
        wait_status(d, qid, "offline")
    # Past the debounce, still nothing reached the hub.
    wait_for(d, "debounce elapsed", lambda d: js(d, "return examhubDemo.session._timers.size") == 0)
    assert server_answers(hub, attempt_id) == {"q-single": "B", "q-text": "online words"}
    assert "offline" in d.find_element(By.ID, "status-q-text").text.lower()
    screenshot(d, artifacts, "candidate-offline")

    set_offline(d, False)
    for qid in ("q-text", "q-number", "q-multi"):
        wait_status(d, qid, "saved")
    assert server_answers(hub, attempt_id) == {
        "q-single": "B", "q-text": "online words and offline words", "q-number": 42, "q-multi": ["x", "z"]}
    assert js(d, "return examhubDemo.session.pendingCount") == 0


def test_a_reload_keeps_the_answers_even_those_typed_offline(hub, candidate_browser):
    d = candidate_browser
    exam_id, sub = create_exam(hub), uid("cand")
    open_candidate(hub, d, exam_id, sub)
    text = d.find_element(By.ID, "q-q-text")
    text.send_keys("before")
    d.find_element(By.ID, "q-q-single-2").click()
    wait_status(d, "q-text", "saved")
    wait_status(d, "q-single", "saved")
    attempt_id = js(d, "return examhubDemo.session.attemptId")

    # A plain reload shows what the hub has.
    d.refresh()
    wait_for(d, "ready again", lambda d: js(d, "return document.body.dataset.ready") == "1")
    assert d.find_element(By.ID, "q-q-text").get_attribute("value") == "before"
    assert d.find_element(By.ID, "q-q-single-2").is_selected()

    # Typed offline, then the tab is closed before the network returns: the answer lives only on this device.
    # (Closing the tab, not navigating away: Chromium lifts the offline emulation for a navigation, and the
    # leaving page would rightly use that moment to save the answer.)
    set_offline(d, True)
    wait_conn(d, "offline")
    d.find_element(By.ID, "q-q-text").send_keys(" after")
    wait_status(d, "q-text", "offline")
    queued = js(d, "return localStorage.getItem(examhubDemo.session.storageKey)")
    assert queued and '"before after"' in queued
    offline_tab = d.current_window_handle
    d.switch_to.new_window("tab")
    fresh_tab = d.current_window_handle
    d.switch_to.window(offline_tab)
    d.close()
    d.switch_to.window(fresh_tab)
    assert server_answers(hub, attempt_id)["q-text"] == "before"

    open_candidate(hub, d, exam_id, sub)
    assert d.find_element(By.ID, "q-q-text").get_attribute("value") == "before after"
    wait_status(d, "q-text", "saved")
    assert server_answers(hub, attempt_id) == {"q-text": "before after", "q-single": "C"}
    assert js(d, "return localStorage.getItem(examhubDemo.session.storageKey)") is None


def test_proctor_page_sees_tab_switching_and_the_candidate_sees_warn_and_pause(
        hub, candidate_browser, proctor_browser, artifacts):
    exam_id = create_exam(hub, proctoring={"profile": "default", "overrides": {"rules": [TAB_RULE]}})
    sub = uid("cand")
    p, d = proctor_browser, candidate_browser
    p.get(f"{base_url(hub)}/demo/proctor?exam={exam_id}")
    wait_for(p, "proctor page ready", lambda p: js(p, "return document.body.dataset.ready") in ("1", "error"))
    assert js(p, "return document.body.dataset.ready") == "1", browser_log(p)

    open_candidate(hub, d, exam_id, sub)
    d.find_element(By.ID, "q-q-text").send_keys("my answer")
    row = f'tr[data-candidate="{sub}"]'
    wait_for(p, "candidate on the roster, connected",
             lambda p: [e.text for e in p.find_elements(By.CSS_SELECTOR, f"{row} td.connected")] == ["yes"])
    assert p.find_element(By.CSS_SELECTOR, f"{row} td.state").text == "in progress"

    # The candidate opens another tab: their exam tab is hidden.
    exam_tab = d.current_window_handle
    d.switch_to.new_window("tab")
    try:
        wait_for(p, "tab_switching in the flag feed",
                 lambda p: p.find_elements(By.CSS_SELECTOR, '#feed li[data-code="tab_switching"]'), timeout=15)
        wait_for(p, "flag on the roster row",
                 lambda p: "tab_switching" in p.find_element(By.CSS_SELECTOR, f"{row} td.flags").text)
        wait_for(p, "risk raised", lambda p: int(p.find_element(By.CSS_SELECTOR, f"{row} td.risk").text) > 0)
    finally:
        d.close()
        d.switch_to.window(exam_tab)

    # Warn, then pause: both show on the candidate's page.
    message = p.find_element(By.ID, "message")
    message.clear()
    message.send_keys("Eyes on your own screen, please.")
    p.find_element(By.CSS_SELECTOR, f'{row} button[data-action="warn"]').click()
    wait_for(d, "warning shown", lambda d: "Eyes on your own screen, please." in d.find_element(By.ID, "notices").text)

    p.find_element(By.CSS_SELECTOR, f'{row} button[data-action="pause"]').click()
    wait_for(d, "pause banner", lambda d: d.find_element(By.ID, "paused").is_displayed())
    assert js(d, "return document.getElementById('all-questions').disabled") is True
    wait_for(d, "countdown paused", lambda d: "paused" in d.find_element(By.ID, "countdown").text)
    wait_for(p, "roster state paused", lambda p: p.find_element(By.CSS_SELECTOR, f"{row} td.state").text == "paused")
    screenshot(d, artifacts, "candidate-paused")
    screenshot(p, artifacts, "proctor")

    p.find_element(By.CSS_SELECTOR, f'{row} button[data-action="resume"]').click()
    wait_for(d, "pause banner gone", lambda d: not d.find_element(By.ID, "paused").is_displayed())
    assert js(d, "return document.getElementById('all-questions').disabled") is False
    wait_for(p, "roster state in progress",
             lambda p: p.find_element(By.CSS_SELECTOR, f"{row} td.state").text == "in progress")
