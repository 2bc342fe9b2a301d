"""The assistant panel of the candidate page against a real hub whose LLM is a local OpenAI-compatible server
(Tests/Integration/fakellm.py): an intent answer, an LLM answer streamed delta by delta, and Stop."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browserkit import HubPool, admin_http, base_url, browser_log, js, screenshot, wait_for
from examkit import exam_def, uid
from fakellm import ANSWER, FakeLLM


@pytest.fixture(scope="module")
def llm():
    fake = FakeLLM()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def llm_hub(tmp_path_factory, llm):
    pool = HubPool(tmp_path_factory.mktemp("browser-llm-hub"))
    yield pool.start({"EXAMHUB_LLM_URL": llm.url, "EXAMHUB_LLM_MODEL": "fake-model", "EXAMHUB_LLM_API_KEY": "sk-1"})
    pool.stop_all()


def ask(d, text: str) -> None:
    box = d.find_element(By.ID, "chat-input")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)  # the keyboard is enough


def bot_bubbles(d) -> list:
    return d.find_elements(By.CSS_SELECTOR, "#chat-log li.bot")


def test_the_assistant_answers_and_streams_in_the_candidate_page(llm_hub, llm, candidate_browser, artifacts):
    exam = exam_def()
    status, body = admin_http(llm_hub, "POST", "/v1/exams", exam)
    assert status == 201, body
    d = candidate_browser
    d.get(f"{base_url(llm_hub)}/demo/candidate?exam={exam['id']}&sub={uid('cand')}")
    wait_for(d, "page ready", lambda d: js(d, "return document.body.dataset.ready") in ("1", "error"))
    assert js(d, "return document.body.dataset.ready") == "1", browser_log(d)
    js(d, "window.__deltas = []; examhubDemo.chat.addEventListener('delta', (e) => __deltas.push(e.detail.soFar));")

    # An intent answers from live state at once.
    ask(d, "how much time do I have left?")
    wait_for(d, "intent answer", lambda d: len(bot_bubbles(d)) == 1
             and bot_bubbles(d)[0].get_attribute("data-state") == "done", timeout=20)
    text = bot_bubbles(d)[0].text  # time_left, from the attempt's clock (any of the intent's response variants)
    assert ("You have " in text or "Time left: " in text) and ("hour" in text or "minute" in text), text
    assert js(d, "return __deltas.length") == 0

    # Anything else goes to the LLM and streams.
    ask(d, "what is the capital of France?")
    wait_for(d, "LLM answer done", lambda d: len(bot_bubbles(d)) == 2
             and bot_bubbles(d)[1].get_attribute("data-state") == "done", timeout=20)
    assert bot_bubbles(d)[1].text == ANSWER
    deltas = js(d, "return __deltas")
    assert len(deltas) >= 3 and deltas[-1] == ANSWER
    assert all(ANSWER.startswith(x) for x in deltas) and len(set(deltas)) == len(deltas), deltas

    # Stop cuts a slow answer: what came stays, marked stopped.
    ask(d, "what is the capital of Italy [slow]")
    wait_for(d, "streaming", lambda d: len(bot_bubbles(d)) == 3 and bot_bubbles(d)[2].text.strip(), timeout=20)
    stop = d.find_element(By.ID, "chat-cancel")
    wait_for(d, "Stop enabled", lambda d: stop.is_enabled())
    stop.click()
    wait_for(d, "cancelled", lambda d: bot_bubbles(d)[2].get_attribute("data-state") == "cancelled", timeout=10)
    assert bot_bubbles(d)[2].text.endswith("[stopped]")
    screenshot(d, artifacts, "candidate-chat")
