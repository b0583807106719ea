"""The dashboard, the evaluation report and the drift report in a real headless Chromium.

Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); in CI these
tests run, they are not skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

TOKEN = "dashboard-token-41c9"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DOCS = Path(__file__).resolve().parents[2] / "docs"

needs_chromium = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

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

    ohlcv = tiny_run["ohlcv_clean"]
    start = pd.Timestamp(tiny_run["evaluation"]["test_span"]["start"])
    csv = tmp_path / "eurusd.csv"
    ohlcv.iloc[: ohlcv.index.get_loc(start) + 400].to_csv(csv)
    port = _free_port()
    env = {**os.environ, "AI_TRADE_BOT_API_TOKEN": TOKEN}
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ai_trade_bot",
            "live",
            "--replay",
            str(csv),
            "--start",
            str(start),
            "--model",
            str(tiny_run["bundle_path"]),
            "--state",
            str(tmp_path / "state.db"),
            "--speed",
            "4",
            "--api",
            "--api-port",
            str(port),
        ],
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
