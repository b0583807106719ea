"""The ccxt source against a local fake Binance (no network)."""

from __future__ import annotations

import pandas as pd
import pytest

from ai_trade_bot.data.ingest import IngestionConfig, load_from_source
from ai_trade_bot.data.sources import fetch_ccxt_ohlcv, make_exchange
from ai_trade_bot.errors import DataSourceError
from tests.data.fake_binance import FakeBinance, make_klines

HOUR_MS = 3_600_000
START_MS = 1_704_067_200_000  # 2024-01-01T00:00Z
START = pd.Timestamp(START_MS, unit="ms", tz="UTC")


def _fetch(server: FakeBinance, *, n_hours: int, limit: int = 100, **kwargs):
    exchange = make_exchange("binance", api_host=server.url, timeout_ms=2000)
    return fetch_ccxt_ohlcv(
        exchange,
        "BTC/USDT",
        "1h",
        since=START,
        until=START + pd.Timedelta(hours=n_hours - 1),
        limit=limit,
        backoff_seconds=0.01,
        **kwargs,
    )


def _kline_requests(server: FakeBinance) -> list[dict]:
    return [r for r in server.requests if r["path"].endswith("/klines")]


def test_paginates_until_the_end() -> None:
    klines = make_klines(START_MS, 250, HOUR_MS)
    with FakeBinance(klines) as server:
        frame = _fetch(server, n_hours=250, limit=100)
    assert len(frame) == 250
    assert len(_kline_requests(server)) == 3
    assert frame.index[0] == START and frame.index.is_monotonic_increasing
    assert frame["close"].iloc[-1] == pytest.approx(float(klines[-1][4]))
    assert list(frame.dtypes) == ["float64"] * 5


def test_retries_after_429_then_succeeds() -> None:
    klines = make_klines(START_MS, 150, HOUR_MS)
    with FakeBinance(klines, plan={1: "429"}) as server:
        frame = _fetch(server, n_hours=150, limit=100)
    assert len(frame) == 150
    # request 0 ok, request 1 was the 429, request 2 repeated the same page
    starts = [r["query"]["startTime"][0] for r in _kline_requests(server)]
    assert starts[1] == starts[2]


def test_gives_up_with_a_clear_error_after_max_retries() -> None:
    klines = make_klines(START_MS, 50, HOUR_MS)
    plan = {i: "429" for i in range(10)}
    with (
        FakeBinance(klines, plan=plan) as server,
        pytest.raises(DataSourceError, match=r"ccxt:binance:BTC/USDT:1h: gave up after 2 retries"),
    ):
        _fetch(server, n_hours=50, max_retries=2)


def test_overlapping_and_duplicate_pages_are_deduplicated() -> None:
    klines = make_klines(START_MS, 250, HOUR_MS)
    with FakeBinance(klines, plan={1: "overlap", 2: "duplicate"}) as server:
        frame = _fetch(server, n_hours=250, limit=100)
    assert len(frame) == 250
    assert frame.index.is_unique
    expected = pd.to_datetime([k[0] for k in klines], unit="ms", utc=True)
    assert (frame.index == expected).all()


def test_a_gap_on_the_exchange_is_kept_as_a_gap() -> None:
    klines = make_klines(START_MS, 120, HOUR_MS, skip=set(range(40, 45)))
    with FakeBinance(klines) as server:
        frame = _fetch(server, n_hours=120, limit=50)
    assert len(frame) == 115
    spacing = frame.index.to_series().diff().dropna()
    assert (spacing == pd.Timedelta(hours=6)).sum() == 1


def test_resumes_after_the_last_stored_candle(tmp_path) -> None:
    klines = make_klines(START_MS, 200, HOUR_MS)
    block = {
        "source": "ccxt",
        "ccxt": {
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "since": str(START),
            "until": str(START + pd.Timedelta(hours=119)),
            "limit": 100,
            "backoff_seconds": 0.01,
            "cache_dir": str(tmp_path),
        },
    }
    with FakeBinance(klines) as server:
        block["ccxt"]["api_host"] = server.url
        first, meta = load_from_source(IngestionConfig(**block))
        assert len(first) == 120 and meta["timeframe"] == "1h"
        n_before = len(_kline_requests(server))
        block["ccxt"]["until"] = str(START + pd.Timedelta(hours=199))
        second, _ = load_from_source(IngestionConfig(**block))
    resumed = _kline_requests(server)[n_before:]
    assert int(resumed[0]["query"]["startTime"][0]) == START_MS + 120 * HOUR_MS
    assert len(second) == 200
    pd.testing.assert_frame_equal(second.iloc[:120], first)
