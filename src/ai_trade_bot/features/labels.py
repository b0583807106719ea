"""Labels, kept apart from features: the label at row t uses only t+1 .. t+h."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
    log_ret = np.log(close).diff()
    next_ret = log_ret.shift(-1)
    band = flat_band_sigmas * log_ret.rolling(band_window).std()
    direction = pd.Series(
        np.where(next_ret > band, UP, np.where(next_ret < -band, DOWN, FLAT)),
        index=close.index,
        dtype="float64",
    )
    direction[next_ret.isna() | band.isna()] = np.nan
    sq = log_ret**2
    # sum of r[t+1..t+h] squared: reverse rolling window, shifted onto t
    fwd_var = sq[::-1].rolling(horizon).sum()[::-1].shift(-1)
    return pd.DataFrame(
        {
            "next_return": next_ret,
            "direction": direction,
            "flat_band": band,
            f"fwd_realized_vol_{horizon}": np.sqrt(fwd_var),
        },
        index=close.index,
    )
