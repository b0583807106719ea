"""The live tests' shared pieces: a scripted feed, the held-out span of the tiny run as
candles, one way to build a runner over a state file, and the exchange double."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ai_trade_bot.commands import live_argv
from ai_trade_bot.data.sources import make_exchange
from ai_trade_bot.live.broker import CcxtBroker
from ai_trade_bot.live.config import RunnerConfig
from ai_trade_bot.live.feeds import FeedEvent, ReplayFeed
from ai_trade_bot.live.model import ModelSource
from ai_trade_bot.live.runner import Runner
from ai_trade_bot.live.store import StateStore
from tests.data.fake_binance import FakeBinance


class Clock:
    """Simulated time: each poll's sleep moves it on."""

    def __init__(self, now: pd.Timestamp) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now.timestamp()

    def sleep(self, seconds: float) -> None:
        self.now += pd.Timedelta(seconds=seconds)


class ScriptedFeed:
    """History, then exactly the given events."""

    def __init__(
        self,
        history: pd.DataFrame,
        events: list[FeedEvent],
        symbol: str = "EURUSD",
        timeframe: str = "1h",
    ) -> None:
        self._history, self._events = history, events
        self.symbol, self.timeframe = symbol, timeframe

    def history(self, rows: int | None = None) -> pd.DataFrame:
        return self._history if rows is None else self._history.iloc[-rows:]

    def events(self, after: pd.Timestamp | None = None):
        for event in self._events:
            if event.kind != "candle" or after is None or event.candle.name > after:
                yield event


def test_span(tiny_run) -> tuple[pd.DataFrame, pd.Timestamp, int]:
    """The tiny run's candles, the start of its held-out span and that start's row."""
    ohlcv = tiny_run["ohlcv_clean"]
    start = pd.Timestamp(tiny_run["evaluation"]["test_span"]["start"])
    return ohlcv, start, ohlcv.index.get_loc(start)


test_span.__test__ = False  # a helper, not a test


def split(tiny_run, n: int) -> tuple[pd.DataFrame, list[FeedEvent]]:
    """The history before the held-out span and its first ``n`` candles as events."""
    ohlcv, _, first = test_span(tiny_run)
    rows = ohlcv.iloc[first : first + n]
    return ohlcv.iloc[:first], [FeedEvent("candle", row.rename(ts)) for ts, row in rows.iterrows()]


def make_runner(
    state: Path, feed: Any, model: str, *, broker: CcxtBroker | None = None, **config: Any
) -> tuple[Runner, StateStore]:
    """A runner over the state file ``state`` (``tracking_uri`` goes to the model source,
    the rest to :class:`RunnerConfig`)."""
    store = StateStore(state)
    runner = Runner(
        feed,
        store,
        ModelSource(model, config.pop("tracking_uri", None)),
        RunnerConfig(symbol=feed.symbol, timeframe=feed.timeframe, **config),
        broker=broker,
    )
    return runner, store


def replay_runner(tiny_run, state: Path, **config: Any) -> tuple[Runner, StateStore]:
    """The tiny bundle replaying its own held-out span on paper."""
    ohlcv, start, _ = test_span(tiny_run)
    feed = ReplayFeed(ohlcv, symbol="EURUSD", timeframe="1h", start=start)
    return make_runner(state, feed, str(tiny_run["bundle_path"]), **config)


def exchange_broker(server: FakeBinance, symbol: str = "BTC/USDT", timeout_ms: int = 5000):
    """A ccxt broker on the fake exchange (test credentials)."""
    credentials = {"apiKey": "test-key", "secret": "test-secret"}
    exchange = make_exchange(
        "binance", api_host=server.url, timeout_ms=timeout_ms, credentials=credentials
    )
    return CcxtBroker(exchange, symbol, backoff_seconds=0.01)


def live_exchange_argv(server: FakeBinance, model: Path, state: Path, candles: int) -> list[str]:
    """``ai-trade-bot live --live`` on the fake exchange: the tiny bundle's EURUSD as
    BTC/USDT, ``candles`` candles polled as fast as the fake reveals them."""
    return live_argv(
        feed="ccxt",
        exchange_url=server.url,
        symbol="BTC/USDT",
        timeframe="1h",
        model=model,
        state=state,
        live=True,
        map_symbol="EURUSD=BTC/USDT",
        max_order_notional=20_000,
        poll_seconds=0.01,
        stale_after=1e9,  # the fake's candles are hours old by the clock
        max_candles=candles,
    )
