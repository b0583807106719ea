"""Notifications through Apprise against a local HTTP server that records what arrives:
the runner's alerts go out as JSON, deduplicated and rate-limited; a failing or hanging
channel never stops trading; URLs (tokens) never reach the logs or the state file."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ai_trade_bot.commands import live_argv
from ai_trade_bot.live.alerts import Alerts
from ai_trade_bot.live.notify import ENV_URLS, Notifier, NotifyConfig, configured_urls
from ai_trade_bot.live.store import StateStore
from tests.live.conftest import ScriptedFeed, make_runner, split

TOKEN = "s3cr3t-T0KEN-9f8e7d"


class Recorder:
    """A local HTTP server keeping each POST's path and JSON body; ``status`` and
    ``delay`` make it fail or hang."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.received: list[tuple[str, dict]] = []
        self.status, self.delay = status, delay
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(recorder.delay)
                recorder.received.append((self.path, json.loads(body or b"{}")))
                self.send_response(recorder.status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = f"hook/{TOKEN}") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def wait(self, n: int, timeout: float = 10.0) -> list[tuple[str, dict]]:
        end = time.time() + timeout
        while len(self.received) < n and time.time() < end:
            time.sleep(0.02)
        return self.received

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.close()


def notifier(*urls: str, **options) -> Notifier:
    return Notifier(NotifyConfig.parse(options, urls))


def test_notif_an_alert_arrives_as_json_at_the_local_server(recorder, tmp_path) -> None:
    store = StateStore(tmp_path / "state.db")
    sender = notifier(recorder.url())
    alerts = Alerts(store, "BTC/USDT", notifier=sender)
    alerts.send("kill_switch", "rolling accuracy below the kill level")
    alerts.send("order", "an order is logged and stored, not notified")
    sender.close()
    (path, body), *rest = recorder.wait(1)
    assert rest == [] and path == f"/hook/{TOKEN}"
    assert body["title"] == "ai_trade_bot kill_switch [BTC/USDT]"
    assert body["message"] == "rolling accuracy below the kill level"
    assert body["type"] == "failure"
    assert [a["kind"] for a in store.alerts()] == ["order", "kill_switch"]  # both stored


def test_notif_dedupes_and_rate_limits(recorder) -> None:
    sender = notifier(recorder.url(), min_interval=60.0, dedupe_seconds=3600.0)
    assert sender.notify("stale_feed", "A", "no candle for 5 min", now=0.0)
    assert not sender.notify("stale_feed", "A", "no candle for 5 min", now=10.0)  # duplicate
    assert not sender.notify("stale_feed", "A", "no candle for 6 min", now=20.0)  # rate limit
    assert not sender.notify("stale_feed", "A", "no candle for 7 min", now=30.0)
    assert sender.notify("stale_feed", "B", "no candle for 5 min", now=30.0)  # another symbol
    assert not sender.notify("stale_feed", "A", "no candle for 5 min", now=100.0)  # still a dup
    assert sender.notify("stale_feed", "A", "no candle for 8 min", now=100.0)
    sender.close()
    messages = [body["message"] for _, body in recorder.wait(3)]
    assert messages == [
        "no candle for 5 min",
        "no candle for 5 min",
        "no candle for 8 min (2 more stale_feed alert(s) for A held back by the rate limit)",
    ]
    assert sender.suppressed == 4


@pytest.mark.parametrize("failure", ["refused", "http_500", "hangs"])
def test_notif_a_failing_channel_never_stops_trading(tiny_run, tmp_path, failure, caplog) -> None:
    server = Recorder(status=500 if failure == "http_500" else 200,
                      delay=30.0 if failure == "hangs" else 0.0)  # fmt: skip
    url = server.url()
    if failure == "refused":
        server.close()
    sender = notifier(url, min_interval=0.0, timeout=1.0)
    history, candles = split(tiny_run, 40)
    runner, store = make_runner(
        tmp_path / "state.db", ScriptedFeed(history, candles), str(tiny_run["bundle_path"])
    )
    runner.alerts.notifier = sender
    runner.start()
    runner.alerts.send("kill_switch", "a test alert the channel cannot take")
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        runner.run()
        sender.close(timeout=3.0)
    assert len(store.decisions("EURUSD", 1000)) == 40  # every candle traded
    assert time.perf_counter() - started < 25  # never waited on the channel
    if failure != "hangs":
        assert sender.failed >= 1 and sender.sent == 0
    assert TOKEN not in caplog.text
    if failure != "refused":
        server.close()


def test_notif_urls_never_reach_logs_or_state(recorder, tiny_run, tmp_path, caplog) -> None:
    bad = f"nosuchservice://{TOKEN}@example"
    sender = notifier(recorder.url(), bad, min_interval=0.0)
    history, candles = split(tiny_run, 30)
    runner, store = make_runner(
        tmp_path / "state.db", ScriptedFeed(history, candles), str(tiny_run["bundle_path"])
    )
    runner.alerts.notifier = sender
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("ai_trade_bot").warning("configured %s", recorder.url())
        runner.start()
        runner.alerts.send("model_change", f"a message naming {TOKEN} is masked in logs")
        runner.run()
        sender.close()
    assert recorder.wait(1)
    assert TOKEN not in caplog.text
    store.close()
    for path in tmp_path.glob("state.db*"):
        assert TOKEN.encode() not in path.read_bytes()


def test_notif_urls_come_from_credentials_and_the_environment(tmp_path, monkeypatch) -> None:
    (tmp_path / "credentials.yml").write_text(
        "notifications:\n  urls:\n    - json://127.0.0.1:1/a\n    - tgram://bottoken/chat\n"
    )
    monkeypatch.setenv(ENV_URLS, "slack://T1/B2/C3 json://127.0.0.1:2/b")
    assert configured_urls(tmp_path) == [
        "json://127.0.0.1:1/a",
        "tgram://bottoken/chat",
        "slack://T1/B2/C3",
        "json://127.0.0.1:2/b",
    ]
    with pytest.raises(ValueError, match=r"credentials\.yml"):
        NotifyConfig.parse({"urls": ["json://x"]})
    with pytest.raises(ValueError, match="unknown"):
        NotifyConfig.parse({"kinds": ["kill_swich"]})


def test_notif_the_live_command_sends_the_daily_summary(recorder, tiny_run, tmp_path) -> None:
    """``ai-trade-bot live --notify URL``: alerts leave the process (the hourly replay
    crosses a UTC midnight within 30 candles: the daily summary)."""
    state = tmp_path / "state.db"
    result = subprocess.run(
        live_argv(
            replay="eurusd",
            model=tiny_run["bundle_path"],
            state=state,
            max_candles=30,
            notify=recorder.url("cli"),
        ),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    kinds = [body["title"] for _, body in recorder.wait(1)]
    assert any("daily_summary" in k for k in kinds), kinds
    summary = next(b for _, b in recorder.received if "daily_summary" in b["title"])
    assert "equity" in summary["message"] and "round trip" in summary["message"]
