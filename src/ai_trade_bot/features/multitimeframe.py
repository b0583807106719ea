"""Higher-timeframe features that use only higher-timeframe bars that have closed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ai_trade_bot.data.timeframes import timeframe_to_timedelta
from ai_trade_bot.errors import ConfigError
from ai_trade_bot.features import indicators as ind


def _rsi(close: np.ndarray, length: int) -> np.ndarray:
    """pandas-ta RSI with simple moving averages of gains and losses (Cutler's,
    ``ta.rsi(mamode="sma")``), NaN until ``length`` changes exist.

    Wilder's smoothing would give every higher bar an infinite memory: a weekly RSI would
    depend on years of history, which the live runner could not recompute exactly from a
    trailing window. This one reads the last ``length`` higher bars only."""
    if close.size <= length:
        return np.full(close.size, np.nan)
    change = np.concatenate([[np.nan], np.diff(close)])
    up = ind.sma(np.where(change < 0, 0.0, change), length)
    down = ind.sma(np.where(change > 0, 0.0, change), length)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 on flat prices: NaN
        return 100.0 * up / (up + np.abs(down))


def _resample(
    opens: np.ndarray, col: dict[str, np.ndarray], rule: pd.Timedelta
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Higher bars of length ``rule`` that hold at least one base bar: their open times
    and OHLCV, as ``resample(rule, origin="epoch", label="left", closed="left")`` with
    empty bins dropped. Bins are anchored at the Unix epoch, so a bin never moves when
    history is cut. (On arrays: pandas' resampler costs ~4 ms per call on the live
    runner's 1,000-row window, for a few dozen bars.)"""
    step = rule.value
    bins = opens // step
    starts = np.flatnonzero(np.concatenate([[True], bins[1:] != bins[:-1]]))
    ends = np.concatenate([starts[1:], [bins.size]]) - 1
    bars = {
        "open": col["open"][starts],
        "high": np.maximum.reduceat(col["high"], starts),
        "low": np.minimum.reduceat(col["low"], starts),
        "close": col["close"][ends],
    }
    return bins[starts] * step, bars


def higher_timeframe_features(
    ohlcv: pd.DataFrame, *, base_timeframe: str, higher: tuple[str, ...]
) -> pd.DataFrame:
    """Return, RSI and trend of each higher timeframe, aligned to base bars causally.

    A base bar opening at t closes at t + base. A higher bar opening at T closes at
    T + H. The base bar may use the higher bar only if T + H <= t + base, i.e. the higher
    bar had closed when the base bar closed (an as-of join on close times).
    """
    col = {k: ohlcv[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close")}
    columns = higher_timeframe_columns(
        ohlcv.index.asi8, col, base_timeframe=base_timeframe, higher=higher
    )
    return pd.DataFrame(columns, index=ohlcv.index)


def higher_timeframe_columns(
    opens: np.ndarray,
    col: dict[str, np.ndarray],
    *,
    base_timeframe: str,
    higher: tuple[str, ...],
) -> dict[str, np.ndarray]:
    """:func:`higher_timeframe_features` of base bars opening at ``opens`` (epoch ns)
    with ``open``, ``high``, ``low`` and ``close`` arrays in ``col``, by column name."""
    base = timeframe_to_timedelta(base_timeframe)
    out: dict[str, np.ndarray] = {}
    base_close = opens + base.value
    for tf in higher:
        rule = timeframe_to_timedelta(tf)
        if rule <= base:
            raise ConfigError(
                f"features.multi_timeframe: {tf!r} is not above the base timeframe "
                f"{base_timeframe!r}; list only longer timeframes."
            )
        if len(opens) == 0:
            feats = {k: np.empty(0) for k in ("ret", "rsi", "sma_dist", "range")}
            closes_at = np.empty(0, dtype=np.int64)
        else:
            opens_at, htf = _resample(opens, col, rule)
            c = htf["close"]
            log_c = np.log(c)
            feats = {
                "ret": np.concatenate([[np.nan], np.diff(log_c)]),
                "rsi": _rsi(c, 14),
                "sma_dist": c / ind.sma(c, 10) - 1.0,
                "range": np.log(htf["high"] / htf["low"]),
            }
            closes_at = opens_at + rule.value  # when each higher bar closes
        # the last higher bar closed by each base bar's close (as-of, backward, exact ok)
        last = np.searchsorted(closes_at, base_close, side="right") - 1
        seen = last >= 0
        for name, values in feats.items():
            aligned = np.full(len(opens), np.nan)
            aligned[seen] = values[last[seen]]
            out[f"htf_{tf}_{name}"] = aligned
    return out
