"""The page at ``GET /`` (``streamops/serve/static/index.html``) in a real browser: headless Chromium
(Debian's ``chromium`` and ``chromium-driver``, installed by ``.ci/run``) driven by selenium
against ``create_app(model=None)`` (the local SmolLM2 model: real tokens, offline) served by
uvicorn on 127.0.0.1.

The page POSTs a streamed completion, reads the run id from ``X-Streamops-Run-Id`` and follows
``/runs/{id}/events`` with ``EventSource``. The answer it shows must be exactly the text of the
run's ``text-delta`` events, as the server logged them (fetched again over HTTP afterwards):
the page appends every delta in order and nothing else, so equality (not a prefix) is the check.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from streamops.events import BaseEvent, RunEnd, TextDelta, from_json
from streamops.serve.app import create_app
from streamops.sse import SSEDecoder

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The flags this machine's Chromium needs: no sandbox as root, no GPU, and no background
# connections (the network is closed: they would be refused, many at a time).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ANSWER_TIMEOUT = 120.0  # seconds for the local model's whole answer (a few seconds here)

pytestmark = pytest.mark.slow


@pytest.fixture
def base_url() -> Iterator[str]:
    """``create_app(model=None)`` served by uvicorn on a free port of 127.0.0.1, in a thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(model=None, workers=1), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60  # the lifespan loads the local model
        while not server.started:
            assert thread.is_alive(), "the server failed to start"
            assert time.monotonic() < deadline, "the server did not start in 60 s"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a fresh profile; always quit at the end."""
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: apt-get install chromium chromium-driver (.ci/run does)"
    assert CHROMEDRIVER.exists(), f"{CHROMEDRIVER} missing: apt-get install chromium-driver (.ci/run does)"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def run_log(base: str, run_id: str) -> list[BaseEvent]:
    """``GET /runs/{id}/events`` of an ended run, to its end, decoded back into events."""
    with httpx.stream("GET", f"{base}/runs/{run_id}/events", timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        body = r.read()
    d = SSEDecoder()
    return [from_json(e.data) for e in d.feed(body) + d.flush() if e.data]


def page_state(driver: webdriver.Chrome) -> dict[str, Any]:
    """The page's status, run id, answer, errors (exact ``textContent``, not layout text)."""
    state: dict[str, Any] = driver.execute_script(
        "const t = (id) => document.getElementById(id).textContent;"
        "return {status: t('status'), run: t('run-id'), answer: t('answer'), errors: t('errors')};"
    )
    return state


def test_page_streams_a_local_model_answer(base_url: str, browser: webdriver.Chrome) -> None:
    started = time.monotonic()
    browser.get(base_url + "/")
    assert browser.title == "streamops"
    assert page_state(browser)["status"] == "idle"
    browser.find_element(By.ID, "prompt").send_keys("Why is the sky blue?")
    browser.find_element(By.ID, "send").click()

    # Mid-stream: the page is streaming (or already done, on a fast machine).
    WebDriverWait(browser, 30).until(lambda d: page_state(d)["status"] in ("streaming", "done"))
    try:
        WebDriverWait(browser, ANSWER_TIMEOUT, poll_frequency=0.1).until(
            lambda d: page_state(d)["status"] not in ("starting", "streaming")
        )
    except TimeoutException:
        pytest.fail(f"no answer in {ANSWER_TIMEOUT} s: {page_state(browser)}")
    state = page_state(browser)
    assert state["status"] == "done", state
    assert state["errors"] == ""
    assert state["answer"].strip(), "empty answer"
    assert browser.find_element(By.ID, "answer").text.strip()  # also visible as laid out

    events = run_log(base_url, state["run"])
    assert events and all(e.run_id == state["run"] for e in events)
    end = events[-1]
    assert isinstance(end, RunEnd)
    assert end.status == "completed"
    assert end.usage is not None and end.usage.output_tokens
    text = "".join(e.delta for e in events if isinstance(e, TextDelta))
    assert state["answer"] == text
    # Real tokens: the text is many deltas (one or a few tokens each), not one block.
    assert sum(isinstance(e, TextDelta) for e in events) > 3

    # No script errors in the page (the favicon's 404 is the browser's own request).
    logs = [entry for entry in browser.get_log("browser") if "favicon.ico" not in entry["message"]]
    assert not [entry for entry in logs if entry["level"] == "SEVERE"], json.dumps(logs, indent=1)
    print(f"browser run: {time.monotonic() - started:.1f} s, {len(text)} characters")
