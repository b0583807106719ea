"""One contract per interface users swap: every :class:`Feed` and every :class:`Broker`
passes the same checks (a new exchange or paper model is one class that passes them)."""

from __future__ import annotations

import pytest

from ai_trade_bot.data.normalise import OHLCV_COLUMNS
from ai_trade_bot.data.sources import make_exchange
from ai_trade_bot.live.broker import Broker, PaperBroker, client_order_id
from ai_trade_bot.live.feeds import CcxtFeed, Feed, ReplayFeed
from ai_trade_bot.live.store import StateStore
from tests.conftest import make_ohlcv
from tests.data.fake_binance import FakeBinance, klines_of
from tests.live.conftest import Clock, exchange_broker

CANDLES = make_ohlcv(120, seed=11, start="2024-05-06")


@pytest.fixture(params=["replay", "ccxt"])
def feed(request):
    if request.param == "replay":
        yield ReplayFeed(CANDLES, symbol="X", timeframe="1h", start=100)
        return
    klines = klines_of(CANDLES, end_ms=int(CANDLES.index[-1].value // 1_000_000))
    clock = Clock(CANDLES.index[100])  # candle 99 has just closed; each poll is an hour
    with FakeBinance(klines) as server:
        exchange = make_exchange("binance", api_host=server.url, timeout_ms=2000)
        yield CcxtFeed(
            exchange,
            symbol="BTC/USDT",
            timeframe="1h",
            poll_seconds=3600,
            stale_after=1e9,
            backoff_seconds=0.01,
            clock=clock,
            sleep=clock.sleep,
            max_polls=15,
        )


def test_every_feed_gives_its_history_then_later_candles_after_a_resume(feed) -> None:
    assert isinstance(feed, Feed)
    history = feed.history(50)
    assert list(history.columns) == list(OHLCV_COLUMNS) and len(history) == 50
    assert str(history.index.tz) == "UTC" and history.index.is_monotonic_increasing
    last = history.index[-1]
    np_close = CANDLES["close"].to_numpy()
    assert history["close"].iloc[-1] == pytest.approx(np_close[99], rel=1e-8)
    events = [e for e in feed.events(after=last) if e.kind == "candle"][:10]
    assert events, "the feed yields the candles after its history"
    times = [e.candle.name for e in events]
    assert all(t > last for t in times) and times == sorted(times)
    assert all(set(OHLCV_COLUMNS) <= set(e.candle.index) and e.live for e in events)
    # a resume after the third: only what came after it
    again = [e.candle.name for e in feed.events(after=times[2]) if e.kind == "candle"]
    assert again[: len(times) - 3] == times[3:]


@pytest.fixture(params=["paper", "ccxt"])
def venue(request, tmp_path):
    if request.param == "paper":
        store = StateStore(tmp_path / "state.db")
        yield PaperBroker(store, "BTC/USDT"), None
        store.close()
        return
    with FakeBinance(klines_of(CANDLES.iloc[:10]), order_plan={2: "open"}) as server:
        yield exchange_broker(server), server


def test_every_broker_takes_an_order_once_and_reports_it_by_client_id(venue) -> None:
    broker, server = venue
    assert isinstance(broker, Broker)
    first = client_order_id("1", "BTC/USDT", 1, "buy")
    report = broker.submit(first, "buy", 0.5)
    assert report["clientOrderId"] == first and report["status"] in ("open", "closed")
    assert float(report["amount"]) == pytest.approx(0.5)
    again = broker.submit(first, "buy", 0.5)  # the same decision again: never a second order
    assert again["clientOrderId"] == first
    found = broker.lookup(first)
    assert found is not None and found["clientOrderId"] == first
    assert broker.lookup(client_order_id("1", "BTC/USDT", 99, "buy")) is None
    assert broker.cancel(client_order_id("1", "BTC/USDT", 98, "sell")) is None
    second = client_order_id("1", "BTC/USDT", 2, "sell")
    opened = broker.submit(second, "sell", 0.25)
    open_ids = [o["clientOrderId"] for o in broker.open_orders()]
    if opened["status"] == "open":
        assert second in open_ids
        cancelled = broker.cancel(second)
        assert cancelled is not None and cancelled["status"] in ("canceled", "cancelled")
        assert second not in [o["clientOrderId"] for o in broker.open_orders()]
    if server is not None:
        assert server.accepted == [first, second]  # each id taken once
    assert broker.paper == (server is None)
