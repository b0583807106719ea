"""Labels, kept apart from features: the label at row t uses only t+1 .. t+h."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ai_trade_bot.features import rolling

DOWN, FLAT, UP = 0, 1, 2
CLASS_NAMES = ("down", "flat", "up")


def build_labels(
    close: pd.Series, *, horizon: int, flat_band_sigmas: float, band_window: int
) -> pd.DataFrame:
    """Direction (3 classes), next log return and forward realized volatility.

    The flat band at t is ``flat_band_sigmas`` times the trailing std of log returns up to
    t (known at t). Rows whose future is not yet known are NaN.

    Returns:
        Columns ``next_return``, ``direction`` (0 down, 1 flat, 2 up; NaN at the end),
        ``flat_band`` and ``fwd_realized_vol_{horizon}``.
    """
    columns = label_arrays(
        close.to_numpy(dtype=np.float64),
        horizon=horizon,
        flat_band_sigmas=flat_band_sigmas,
        band_window=band_window,
    )
    return pd.DataFrame(columns, index=close.index)


def label_arrays(
    c: np.ndarray, *, horizon: int, flat_band_sigmas: float, band_window: int
) -> dict[str, np.ndarray]:
    """:func:`build_labels` of an array of closes, by column name."""
    log_ret = np.concatenate([[np.nan], np.diff(np.log(c))])
    next_ret = np.concatenate([log_ret[1:], [np.nan]])
    band = flat_band_sigmas * rolling.mean_std(log_ret, band_window)[1]
    with np.errstate(invalid="ignore"):
        direction = np.where(next_ret > band, UP, np.where(next_ret < -band, DOWN, FLAT))
    direction = np.where(np.isnan(next_ret) | np.isnan(band), np.nan, direction.astype(float))
    # sum of r[t+1..t+h] squared: a trailing window sum read backwards, shifted onto t
    ahead = rolling.total((log_ret**2)[::-1], horizon)[::-1]
    fwd_var = np.concatenate([ahead[1:], [np.nan]])
    return {
        "next_return": next_ret,
        "direction": direction,
        "flat_band": band,
        f"fwd_realized_vol_{horizon}": np.sqrt(fwd_var),
    }
