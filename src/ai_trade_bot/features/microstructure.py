"""Microstructure proxies that need only OHLCV bars."""

from __future__ import annotations

import numpy as np
import pandas as pd


def tick_rule_sign(close: pd.Series) -> pd.Series:
    """+1/-1 by the tick rule: sign of the price change, carried forward on no change."""
    sign = np.sign(close.diff())
    return sign.replace(0.0, np.nan).ffill().fillna(0.0)


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
    min_valid = window if min_valid is None else min_valid
    dollar_volume = close * volume.where(volume > 0)
    amihud = (log_ret.abs() / dollar_volume).rolling(window, min_periods=min_valid).mean()
    amihud_rel = np.log(amihud / amihud.rolling(norm_window, min_periods=window).median())
    cov = log_ret.rolling(window).cov(log_ret.shift(1))
    roll_spread = 2.0 * np.sqrt((-cov).clip(lower=0.0))
    sign = tick_rule_sign(close)
    rel_volume = volume / volume.rolling(window).mean()
    signed = sign * rel_volume
    kyle = log_ret.rolling(window).cov(signed) / signed.rolling(window).var()
    imbalance = (sign * volume).rolling(window).sum() / volume.rolling(window).sum()
    return pd.DataFrame(
        {
            f"amihud_rel_{window}": amihud_rel,
            f"roll_spread_{window}": roll_spread,
            f"kyle_lambda_{window}": kyle,
            f"volume_imbalance_{window}": imbalance,
            # a bar with no volume sits at the floor instead of log(0)
            f"rel_volume_{window}": np.log(rel_volume.clip(lower=1e-3)),
        },
        index=close.index,
    )
