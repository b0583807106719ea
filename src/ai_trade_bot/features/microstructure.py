"""Microstructure proxies that need only OHLCV bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

from ai_trade_bot.features import rolling


def tick_rule_sign(close: pd.Series) -> pd.Series:
    """+1/-1 by the tick rule: sign of the price change, carried forward on no change."""
    return pd.Series(_tick_rule(close.to_numpy(dtype=np.float64)), index=close.index)


@njit(cache=True)
def _tick_rule(close: np.ndarray) -> np.ndarray:
    out = np.zeros(close.size)
    last = 0.0
    for i in range(1, close.size):
        change = close[i] - close[i - 1]
        if change > 0:
            last = 1.0
        elif change < 0:
            last = -1.0
        out[i] = last
    return out


def microstructure_features(
    close: pd.Series,
    log_ret: pd.Series,
    volume: pd.Series,
    *,
    window: int,
    norm_window: int,
    min_valid: int | None = None,
) -> pd.DataFrame:
    """Amihud illiquidity, Roll spread, a Kyle's-lambda proxy and tick-rule imbalance.

    All are scale-free: Amihud relative to its own trailing median (log), Roll from
    return autocovariance, Kyle's lambda against volume normalised by its trailing mean.
    A zero volume is a valid observation (no trades); only Amihud, which divides by it,
    skips that bar, and its window still gives a value from ``min_valid`` valid bars.
    """
    arrays = (s.to_numpy(dtype=np.float64) for s in (close, log_ret, volume))
    columns = microstructure_columns(
        *arrays, window=window, norm_window=norm_window, min_valid=min_valid
    )
    return pd.DataFrame(columns, index=close.index)


def microstructure_columns(
    c: np.ndarray,
    r: np.ndarray,
    v: np.ndarray,
    *,
    window: int,
    norm_window: int,
    min_valid: int | None = None,
    last: int | None = None,
) -> dict[str, np.ndarray]:
    """:func:`microstructure_features` of close, log return and volume arrays, by column
    name. ``last``: only the last ``last`` rows are asked for: the columns are then
    computed on the bars those rows read (at least ``norm_window + 2 * window`` rows are
    returned; NaN or any value before the last ``last``)."""
    min_valid = window if min_valid is None else min_valid
    if last is not None and c.size > last + norm_window + 2 * window:
        # every column is a trailing window of at most norm_window + window bars: the
        # rows before them change nothing (but the tick rule's sign over a run of
        # unchanged closes longer than the cut, as on any window the live path reads)
        cut = c.size - (last + norm_window + 2 * window)
        c, r, v = c[cut:], r[cut:], v[cut:]
    first = 0 if last is None else max(0, c.size - last)
    with np.errstate(invalid="ignore", divide="ignore"):
        dollar_volume = c * np.where(v > 0, v, np.nan)
        amihud = rolling.nanmean(np.abs(r) / dollar_volume, window, min_valid)
        typical = rolling.median(amihud, norm_window, window, first)
        amihud_rel = np.log(amihud / typical)
        lagged = np.concatenate([[np.nan], r[:-1]])
        cov = rolling.cov_corr(r, lagged, window)[0]
        roll_spread = 2.0 * np.sqrt(np.clip(-cov, 0.0, None))
        sign = _tick_rule(c)
        rel_volume = v / rolling.mean_std(v, window)[0]
        signed = sign * rel_volume
        kyle = rolling.cov_corr(r, signed, window)[0] / rolling.mean_std(signed, window)[1] ** 2
        imbalance = rolling.total(sign * v, window) / rolling.total(v, window)
        # a bar with no volume sits at the floor instead of log(0)
        floor_volume = np.log(np.clip(rel_volume, 1e-3, None))
    return {
        f"amihud_rel_{window}": amihud_rel,
        f"roll_spread_{window}": roll_spread,
        f"kyle_lambda_{window}": kyle,
        f"volume_imbalance_{window}": imbalance,
        f"rel_volume_{window}": floor_volume,
    }
