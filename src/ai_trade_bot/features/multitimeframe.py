"""Higher-timeframe features that use only higher-timeframe bars that have closed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas_ta as ta

from ai_trade_bot.data.timeframes import timeframe_to_timedelta
from ai_trade_bot.errors import ConfigError


def _rsi(close: pd.Series, length: int) -> pd.Series:
    """pandas-ta RSI with simple moving averages of gains and losses (Cutler's), NaN until
    ``length`` changes exist (pandas-ta returns None on short input and values before the
    window is full, both of which depend on history length).

    Wilder's smoothing would give every higher bar an infinite memory: a weekly RSI would
    depend on years of history, which the live runner could not recompute exactly from a
    trailing window. This one reads the last ``length`` higher bars only."""
    out = pd.Series(np.nan, index=close.index)
    if len(close) > length:
        rsi = ta.rsi(close, length=length, mamode="sma")
        if rsi is not None:
            out = rsi.where(np.arange(len(close)) >= length)
    return out


def _resample(ohlcv: pd.DataFrame, rule: pd.Timedelta) -> pd.DataFrame:
    # Bins are anchored at the Unix epoch, so a bin never moves when history is cut.
    agg = ohlcv.resample(rule, origin="epoch", label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    return agg.dropna(subset=["close"])


def higher_timeframe_features(
    ohlcv: pd.DataFrame, *, base_timeframe: str, higher: tuple[str, ...]
) -> pd.DataFrame:
    """Return, RSI and trend of each higher timeframe, aligned to base bars causally.

    A base bar opening at t closes at t + base. A higher bar opening at T closes at
    T + H. The base bar may use the higher bar only if T + H <= t + base, i.e. the higher
    bar had closed when the base bar closed (an as-of join on close times).
    """
    base = timeframe_to_timedelta(base_timeframe)
    out = pd.DataFrame(index=ohlcv.index)
    base_close_time = pd.Series(ohlcv.index + base, index=ohlcv.index, name="close_time")
    for tf in higher:
        rule = timeframe_to_timedelta(tf)
        if rule <= base:
            raise ConfigError(
                f"features.multi_timeframe: {tf!r} is not above the base timeframe "
                f"{base_timeframe!r}; list only longer timeframes."
            )
        htf = _resample(ohlcv, rule)
        c = htf["close"]
        feats = pd.DataFrame(
            {
                f"htf_{tf}_ret": np.log(c).diff(),
                f"htf_{tf}_rsi": _rsi(c, 14),
                f"htf_{tf}_sma_dist": c / c.rolling(10).mean() - 1.0,
                f"htf_{tf}_range": np.log(htf["high"] / htf["low"]),
            }
        )
        feats.index = htf.index + rule  # when each higher bar closes
        joined = pd.merge_asof(
            base_close_time.to_frame(),
            feats.rename_axis("close_time").reset_index(),
            on="close_time",
            direction="backward",
            allow_exact_matches=True,
        )
        joined.index = ohlcv.index
        out = out.join(joined.drop(columns="close_time"))
    return out
