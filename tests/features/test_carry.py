"""The technical indicators' carried state: the live path's O(1) row equals the batch's."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.data.normalise import OHLCV_COLUMNS
from ai_trade_bot.data.sources import load_bundled
from ai_trade_bot.features import carry as technical_carry
from ai_trade_bot.features import indicators as ind
from ai_trade_bot.features.build import (
    FeatureState,
    build_features,
    build_features_with_state,
    feature_config,
    stream_rows,
    update_features,
)


def _stream(ohlcv: pd.DataFrame, timeframe: str, start: int, config, round_trip_every: int = 0):
    """Rows ``start:`` one candle at a time from the state after ``ohlcv[:start]`` (the
    runner keeps ``stream_rows + 2`` candles), and how many came from the carried path."""
    rows = stream_rows(config, timeframe) + 2
    _, state = build_features_with_state(ohlcv.iloc[:start], timeframe=timeframe, config=config)
    out, carried = [], 0
    for t in range(start, len(ohlcv)):
        usable = technical_carry.usable(state.technical, config.ema_lengths, max(config.lags))
        carried += usable
        row, state = update_features(
            ohlcv.iloc[max(0, t + 1 - rows) : t + 1], state, timeframe=timeframe, config=config
        )
        if round_trip_every and t % round_trip_every == 0:  # what the state store does
            state = FeatureState.from_dict(json.loads(json.dumps(state.to_dict())))
        out.append(row)
    return pd.DataFrame(out), carried


def _bit_equal(got: pd.DataFrame, want: pd.DataFrame) -> list[str]:
    a, b = got.to_numpy(), want[got.columns].to_numpy()
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return list(got.columns[~same.all(axis=0)])


@pytest.mark.parametrize("name", ["eurusd", "sp500"])
def test_carried_indicators_equal_the_batch_features_bit_for_bit(name: str) -> None:
    """Every feature column, 600 candles streamed through the carried recursions (EMA,
    RSI, ATR, ADX, MACD, Keltner, VWAP, OBV and the RSI lags), with the state written to
    JSON and read back along the way, equals the batch matrix exactly."""
    frame, _, timeframe = load_bundled(name)
    ohlcv = frame[list(OHLCV_COLUMNS)].astype("float64")
    config = feature_config({})
    n = 600
    batch = build_features(ohlcv, timeframe=timeframe, config=config)
    streamed, carried = _stream(ohlcv, timeframe, len(ohlcv) - n, config, round_trip_every=97)
    assert carried == n  # every row came from the carried state
    assert _bit_equal(streamed, batch.iloc[-n:]) == []
    assert (
        streamed[["ema_12_dist", "adx_14", "macd_signal_atr", "rsi_14_lag_10"]].notna().all().all()
    )


def test_a_zero_range_bar_is_carried_as_pandas_ta_applies_it() -> None:
    """pandas-ta adds an epsilon to every bar's range once any range is 0. A zero-range
    bar inside the streamed span: from that bar on the carried rows equal the batch
    (which sees it everywhere); before it they equal the batch of the history so far."""
    frame, _, timeframe = load_bundled("sp500")
    ohlcv = frame[list(OHLCV_COLUMNS)].astype("float64").iloc[-2000:].copy()
    zero = len(ohlcv) - 150
    ohlcv.iloc[zero, ohlcv.columns.get_loc("high")] = ohlcv["low"].iloc[zero]
    ohlcv.iloc[zero, ohlcv.columns.get_loc("open")] = ohlcv["low"].iloc[zero]
    ohlcv.iloc[zero, ohlcv.columns.get_loc("close")] = ohlcv["low"].iloc[zero]
    config = feature_config({})
    start = len(ohlcv) - 300
    streamed, carried = _stream(ohlcv, timeframe, start, config)
    assert carried == 300
    after = build_features(ohlcv, timeframe=timeframe, config=config).iloc[zero:]
    assert _bit_equal(streamed.iloc[zero - start :], after) == []
    before = build_features(ohlcv.iloc[:zero], timeframe=timeframe, config=config)
    assert _bit_equal(streamed.iloc[: zero - start], before.iloc[start:]) == []
    assert streamed["atr_14_pct"].iloc[zero - start :].notna().all()


def test_a_state_without_the_carry_rebuilds_it_from_the_window() -> None:
    """A state saved before the carry existed (or one too short to seed it) takes one
    window pass, then carries; the rows match the batch to rounding."""
    frame, _, timeframe = load_bundled("eurusd")
    ohlcv = frame[list(OHLCV_COLUMNS)].astype("float64")
    config = feature_config({})
    rows = stream_rows(config, timeframe) + 2
    start = len(ohlcv) - 50
    _, state = build_features_with_state(ohlcv.iloc[:start], timeframe=timeframe, config=config)
    old = state.to_dict()
    del old["technical"]
    state = FeatureState.from_dict(old)
    assert state.technical is None
    got = []
    for t in range(start, len(ohlcv)):
        row, state = update_features(ohlcv.iloc[t + 1 - rows : t + 1], state, timeframe=timeframe,
                                     config=config)  # fmt: skip
        got.append(row)
        assert technical_carry.usable(state.technical, config.ema_lengths, max(config.lags))
    want = build_features(ohlcv, timeframe=timeframe, config=config).iloc[start:]
    np.testing.assert_allclose(pd.DataFrame(got).to_numpy(), want.to_numpy(), rtol=1e-9)


def test_ewm_step_is_the_batch_recursion_value_for_value() -> None:
    """One value at a time from the carried state = the numba kernel over the array, bit
    for bit, through NaNs, repeats and both kinds of ``com``."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=400).cumsum()
    x[[5, 6, 100, 101, 102]] = np.nan
    x[200:204] = x[199]
    for com in (ind.ema_com(12), ind.rma_com(14)):
        carry: list = []
        batch = ind._ewm_mean(x[:50], com, carry)
        whole = ind._ewm_mean(x, com)
        np.testing.assert_array_equal(batch, whole[:50])
        stepped = [ind.ewm_step(carry, value, com) for value in x[50:]]
        np.testing.assert_array_equal(np.array(stepped, dtype=float), whole[50:])
