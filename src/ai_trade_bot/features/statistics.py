"""Rolling statistics of returns: moments, z-scores, ranks, autocorrelation, Hurst."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ai_trade_bot.features._numba_kernels import rolling_hurst


def statistical_features(
    close: pd.Series,
    log_ret: pd.Series,
    volume: pd.Series,
    *,
    windows: tuple[int, ...],
    rank_window: int,
    autocorr_window: int,
    autocorr_lags: int,
    hurst_window: int,
    sharpe_window: int,
) -> pd.DataFrame:
    """Trailing-window statistics (every value at t uses data up to t only; the drawdown
    from the all-time peak, which needs all history, is built with the GARCH features)."""
    out: dict[str, pd.Series] = {}
    for w in windows:
        roll = log_ret.rolling(w)
        mean, std = roll.mean(), roll.std()
        out[f"ret_mean_{w}"] = mean
        out[f"ret_std_{w}"] = std
        out[f"ret_skew_{w}"] = roll.skew()
        out[f"ret_kurt_{w}"] = roll.kurt()
        out[f"ret_z_{w}"] = (log_ret - mean) / std
        price_roll = close.rolling(w)
        out[f"close_z_{w}"] = (close - price_roll.mean()) / price_roll.std()
    out[f"ret_rank_{rank_window}"] = log_ret.rolling(rank_window).rank(pct=True)
    # ranks of volume itself: a zero-volume bar is the lowest rank, not a missing value
    out[f"volume_rank_{rank_window}"] = volume.rolling(rank_window).rank(pct=True)
    for lag in range(1, autocorr_lags + 1):
        out[f"autocorr_{lag}"] = log_ret.rolling(autocorr_window).corr(log_ret.shift(lag))
    out[f"hurst_{hurst_window}"] = pd.Series(
        rolling_hurst(log_ret.to_numpy(dtype=np.float64), hurst_window, 8), index=close.index
    )
    roll = log_ret.rolling(sharpe_window)
    out[f"rolling_sharpe_{sharpe_window}"] = roll.mean() / roll.std()
    return pd.DataFrame(out, index=close.index)
