"""The dashboard of a universe book in headless Chromium: four symbols traded as one book,
its equity, exposure by sector, the limits and how close each is, every symbol's position,
votes and reason; pause for all symbols from the page."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import urllib.request

from ai_trade_bot.commands import live_argv
from tests.live.book_fixture import SYMBOLS, save_planted
from tests.live.test_dashboard import (  # noqa: F401  (the browser fixture)
    DOCS,
    TOKEN,
    _free_port,
    _severe,
    _wait,
    needs_chromium,
    pytestmark,
)
from tests.live.test_dashboard import browser as browser


@needs_chromium
def test_dashboard_shows_the_portfolio_book_and_pauses_every_symbol(browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    candles, bundle = save_planted(tmp_path / "bundle")
    times = sorted(candles["timestamp"].unique())
    port = _free_port()
    state = tmp_path / "state.db"
    runner = subprocess.Popen(
        live_argv(universe=True, replay=tmp_path / "candles.parquet", start=str(times[-150]),
                  model=bundle, state=state, speed=2, api=True, api_port=port),
        env={**os.environ, "AI_TRADE_BOT_API_TOKEN": TOKEN},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        def stepped() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/portfolio", timeout=2) as r:
                    return r.status == 200 and b'"bar":' in r.read()
            except OSError:
                return False

        _wait(stepped, timeout=180, what="the book's first steps")
        browser.get(url)
        _wait(
            lambda: browser.execute_script(
                "const g = document.getElementById('book-equity-chart');"
                "return g && g.data ? g.data[0].x.length : 0;"
            ) >= 3,
            what="the book's equity chart",
        )  # fmt: skip
        traces = browser.execute_script(
            "return document.getElementById('book-exposure-chart').data.map(t => t.name);"
        )
        assert set(traces) == {"tech", "energy"}
        rows = _wait(
            lambda: [r.find_elements(By.TAG_NAME, "td")[0].text
                     for r in browser.find_elements(By.CSS_SELECTOR, "#book-symbols tbody tr")]
            or None,
            what="the symbols table",
        )  # fmt: skip
        assert rows == SYMBOLS
        shown = browser.find_elements(By.CSS_SELECTOR, "#book-limits tbody tr")
        limits = [r.find_elements(By.TAG_NAME, "td")[0].text for r in shown]
        assert {"max_total_exposure", "max_single_sector", "max_correlated_exposure"} <= set(limits)
        assert browser.find_element(By.ID, "single").get_attribute("hidden") is not None
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        from selenium.webdriver.support.ui import Select

        Select(browser.find_element(By.ID, "symbol")).select_by_value("")  # all symbols
        browser.find_element(By.ID, "pause").click()

        def paused() -> bool:
            db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=2)
            try:
                flags = [r[0] for r in db.execute("SELECT paused FROM book_positions")]
            finally:
                db.close()
            return len(flags) == len(SYMBOLS) and all(flags)

        _wait(paused, timeout=60, what="every symbol paused")
        _wait(lambda: "paused" in browser.find_element(By.ID, "book-symbols").text,
              what="the page to show the pause")  # fmt: skip
        shot = tmp_path / "book.png"
        browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
        if os.environ.get("AI_TRADE_BOT_UPDATE_DOCS"):
            DOCS.mkdir(exist_ok=True)
            shutil.copy(shot, DOCS / "dashboard_book.png")
        assert _severe(browser) == []
        assert TOKEN not in browser.page_source
    finally:
        runner.terminate()
        output, _ = runner.communicate(timeout=60)
    assert TOKEN not in output
