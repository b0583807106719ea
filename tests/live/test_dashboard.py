"""The dashboard, the evaluation report and the drift report in a real headless Chromium.

Debian's ``chromium`` and ``chromium-driver``, found on ``PATH`` as ``.ci/run`` finds them
(``.ci/run`` installs them). Under CI (the ``CI`` variable set) a missing browser fails
these tests; elsewhere they skip and say how to install it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from ai_trade_bot.commands import live_argv
from tests.live.conftest import test_span

TOKEN = "dashboard-token-41c9"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
DOCS = Path(__file__).resolve().parents[2] / "docs"
INSTALL = "sudo apt-get install -y chromium chromium-driver"
pytestmark = pytest.mark.slow  # a browser and a runner process each


def needs_chromium(test):
    """Run ``test`` with Chromium; without it, skip with the install command, except under
    CI, where the ``browser`` fixture fails instead."""
    if (CHROMIUM and CHROMEDRIVER) or os.environ.get("CI"):
        return test
    return pytest.mark.skip(reason=f"needs chromium and chromedriver on PATH: {INSTALL}")(test)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail(f"CI runs the browser tests: no chromium/chromedriver on PATH ({INSTALL})")

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1400,1700",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _severe(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _wait(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@needs_chromium
def test_dashboard_shows_the_runner_trading_and_pauses_it(tiny_run, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    ohlcv, start, first = test_span(tiny_run)
    csv = tmp_path / "eurusd.csv"
    ohlcv.iloc[: first + 400].to_csv(csv)
    port = _free_port()
    env = {**os.environ, "AI_TRADE_BOT_API_TOKEN": TOKEN}
    runner = subprocess.Popen(
        live_argv(
            replay=csv,
            start=start,
            model=tiny_run["bundle_path"],
            state=tmp_path / "state.db",
            speed=4,
            api=True,
            api_port=port,
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def decided() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/decisions?limit=1", timeout=2) as r:
                    return r.status == 200 and r.read() != b"[]"
            except OSError:
                return False

        _wait(decided, timeout=120, what="the runner's first decisions")
        browser.get(url)
        points = _wait(
            lambda: (
                browser.execute_script(
                    "const g = document.getElementById('equity-chart');"
                    "return g && g.data ? g.data[0].x.length : 0;"
                )
                >= 3
            ),
            what="the equity chart to draw",
        )
        assert points
        drawn = browser.find_elements(By.CSS_SELECTOR, "#equity-chart path.js-line")
        assert drawn and "L" in drawn[0].get_attribute("d")  # an SVG line is on the page
        agents = set(tiny_run["deploy_bundle"].agents) | {"meta-agent"}
        rows = _wait(
            lambda: (
                {
                    r.find_elements(By.TAG_NAME, "td")[0].text
                    for r in browser.find_elements(By.CSS_SELECTOR, "#votes tbody tr")
                }
                or None
            ),
            what="the votes table",
        )
        assert rows == agents
        assert "running" in browser.find_element(By.ID, "status").text
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "pause").click()
        _wait(
            lambda: "paused" in browser.find_element(By.ID, "status").text,
            what="the shown status to become paused",
        )
        assert "halted: paused" in browser.find_element(By.ID, "status").text
        shot = tmp_path / "dashboard.png"
        browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
        if os.environ.get("AI_TRADE_BOT_UPDATE_DOCS"):
            DOCS.mkdir(exist_ok=True)
            shutil.copy(shot, DOCS / "dashboard.png")
        assert _severe(browser) == []
        assert TOKEN not in browser.page_source
    finally:
        runner.terminate()
        output, _ = runner.communicate(timeout=60)
    assert TOKEN not in output


@needs_chromium
def test_safety_a_hostile_symbol_renders_as_text(tiny_run, browser, tmp_path) -> None:
    """A replay file's name is the symbol the page shows: markup in it stays text (and
    the page's policy would refuse an inline handler anyway)."""
    from selenium.webdriver.common.by import By

    hostile = "<img src=x onerror=document.title='pwned'>"
    ohlcv, start, first = test_span(tiny_run)
    csv = tmp_path / f"{hostile}.csv"
    ohlcv.iloc[: first + 300].to_csv(csv)
    port = _free_port()
    runner = subprocess.Popen(
        live_argv(
            replay=csv,
            start=start,
            model=tiny_run["bundle_path"],
            state=tmp_path / "state.db",
            speed=4,
            api=True,
            api_port=port,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def started() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/status", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        _wait(started, timeout=120, what="the runner's first state")
        browser.get(url)
        shown = _wait(
            lambda: hostile in browser.find_element(By.ID, "status").text,
            what="the symbol in the status line",
        )
        assert shown
        time.sleep(2.0)  # two refreshes: a handler would have run by now
        assert browser.title == "ai_trade_bot: live"
        assert browser.find_elements(By.CSS_SELECTOR, "#status img") == []
        assert _severe(browser) == []  # nothing was even tried against the policy
    finally:
        runner.terminate()
        runner.communicate(timeout=60)


@needs_chromium
def test_the_evaluation_and_drift_reports_render_without_console_errors(
    tiny_run, browser, tmp_path
) -> None:
    from ai_trade_bot.pipelines.drift import create_pipeline
    from tests.pipelines.conftest import run_pipeline

    drift = run_pipeline(
        create_pipeline(),
        {
            "deploy_bundle": tiny_run["deploy_bundle"],
            "features": tiny_run["features"],
            "ohlcv_clean": tiny_run["ohlcv_clean"],
            "evaluation": tiny_run["evaluation"],
            "labels": tiny_run["labels"],
            "params:drift": tiny_run["params"]["drift"],
        },
    )
    reports = {
        "evaluation_report.html": tiny_run["evaluation_report"],
        "drift_report.html": drift["drift_report"],
    }
    for name, html in reports.items():
        path = tmp_path / name
        path.write_text(html)
        browser.get(path.as_uri())
        _wait(
            lambda: browser.execute_script("return document.readyState") == "complete",
            what=f"{name} to load",
        )
        time.sleep(1.0)  # let the report's own scripts draw
        assert browser.find_elements("tag name", "body")[0].text.strip(), name
        assert _severe(browser) == [], name
    assert "Research software" in browser.page_source or "drift" in browser.page_source.lower()
