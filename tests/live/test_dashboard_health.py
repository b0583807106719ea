"""The dashboard's operator panels in headless Chromium, over a state file of three
symbols' runners: model health from the prediction ledger, the candlestick chart with
fills and stops, the explained decision and the trades table."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

from tests.live.conftest import ScriptedFeed, make_runner, split
from tests.live.test_dashboard import DOCS, _free_port, _severe, _wait, browser, needs_chromium

pytestmark = pytest.mark.slow
SYMBOLS = ("EURUSD", "EURUSD-B", "EURUSD-C")
__all__ = ["browser"]  # the fixture, shared


@pytest.fixture(scope="module")
def three_runners(tiny_run, tmp_path_factory):
    """Three runners on one state file: the tiny bundle traded on three feeds (the second
    and third start later in the held-out span, under their own names)."""
    path = tmp_path_factory.mktemp("health") / "state.db"
    for offset, symbol in enumerate(SYMBOLS):
        history, candles = split(tiny_run, 260 + 40 * offset)
        candles = candles[40 * offset :]  # the later ones skip their first candles
        runner, store = make_runner(
            path,
            ScriptedFeed(history, candles, symbol=symbol),
            str(tiny_run["bundle_path"]),
            symbol_map={"EURUSD": symbol},
        )
        runner.start()
        runner.run()
        runner.stop("the replay ended")
        store.close()
    return path


def test_ledger_models_endpoint_reads_live_against_out_of_fold(three_runners) -> None:
    from fastapi.testclient import TestClient

    from ai_trade_bot.live.api import create_app

    client = TestClient(create_app(three_runners), base_url="http://127.0.0.1")
    health = client.get("/models").json()
    assert [s["symbol"] for s in health["symbols"]] == sorted(SYMBOLS)
    for entry in health["symbols"]:
        meta = next(a for a in entry["agents"] if a["agent"] == "meta")
        assert meta["scored"] > 100 and 0 <= meta["accuracy"] <= 1
        assert meta["oof_accuracy"] is not None and meta["oof_rows"] > 0
        assert "prediction_drift" in meta and entry["trained_to"] and entry["packaged_at"]
    chart = client.get("/chart", params={"symbol": "EURUSD-B", "limit": 100}).json()
    assert len(chart["time"]) == 100 and len(chart["close"]) == 100
    assert client.get("/trades", params={"symbol": "EURUSD"}).json()
    decision = client.get("/decisions", params={"symbol": "EURUSD-C", "limit": 1}).json()[0]
    assert decision["rule"] and isinstance(decision["contributions"], dict)


@needs_chromium
def test_dashboard_health_panel_chart_and_trades_with_three_symbols(
    three_runners, browser, tmp_path
) -> None:
    from selenium.webdriver.common.by import By

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ai_trade_bot", "serve", "--state", str(three_runners),
         "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        _wait(up, timeout=60, what="the status API")
        browser.get(url)
        rows = _wait(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#health tbody tr"),
            what="the model health table",
        )
        assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows] == sorted(SYMBOLS)
        first = rows[0].find_elements(By.TAG_NAME, "td")
        assert first[5].text.endswith("%") and first[6].text.endswith("%")  # live, oof
        agents = browser.find_elements(By.CSS_SELECTOR, "#health-agents tbody tr")
        assert "meta" in {r.find_elements(By.TAG_NAME, "td")[0].text for r in agents}
        candles = _wait(
            lambda: browser.execute_script(
                "const g = document.getElementById('candles-chart');"
                "return g && g.data && g.data[0].type === 'candlestick' ? g.data[0].x.length : 0;"
            ),
            what="the candlestick chart",
        )
        assert candles == 200
        fills = browser.execute_script(
            "return document.getElementById('candles-chart').data.slice(3)"
            ".reduce((n, t) => n + t.x.length, 0);"
        )
        assert fills > 0  # buys, sells and exits are marked
        assert browser.find_elements(By.CSS_SELECTOR, "#trades tbody tr")
        assert "rule:" in browser.find_element(By.ID, "explain").text
        shot = tmp_path / "dashboard_health.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 20_000
        if os.environ.get("AI_TRADE_BOT_UPDATE_DOCS"):
            shutil.copy(shot, DOCS / "dashboard_health.png")
        assert _severe(browser) == []
    finally:
        server.terminate()
        server.communicate(timeout=30)
