"""Rolling statistics of returns: moments, z-scores, ranks, autocorrelation, Hurst
(each window computed on its own: :mod:`ai_trade_bot.features.rolling`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.features import rolling
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
    last: int | None = None,
) -> pd.DataFrame:
    """Trailing-window statistics (every value at t uses data up to t only; the drawdown
    from the all-time peak, which needs all history, is built with the GARCH features).

    ``last``: compute only the last ``last`` rows (earlier rows are NaN, or where a
    shorter window reaches them, their usual value). Every window is
    computed on its own, so those rows equal the full computation's exactly; the live
    runner needs the newest row only.
    """
    columns = statistical_columns(
        close.to_numpy(dtype=np.float64),
        log_ret.to_numpy(dtype=np.float64),
        volume.to_numpy(dtype=np.float64),
        windows=windows,
        rank_window=rank_window,
        autocorr_window=autocorr_window,
        autocorr_lags=autocorr_lags,
        hurst_window=hurst_window,
        sharpe_window=sharpe_window,
        last=last,
    )
    return pd.DataFrame(columns, index=close.index)


def statistical_columns(
    c: np.ndarray,
    r: np.ndarray,
    v: np.ndarray,
    *,
    windows: tuple[int, ...],
    rank_window: int,
    autocorr_window: int,
    autocorr_lags: int,
    hurst_window: int,
    sharpe_window: int,
    last: int | None = None,
) -> dict[str, np.ndarray]:
    """:func:`statistical_features` of close, log return and volume arrays, by name."""
    n = r.size

    def tail(span: int, fn: Callable[..., Any], x: np.ndarray, *params: int) -> Any:
        """``fn(x, *params)`` on the rows the last ``last`` windows of ``span`` read,
        padded back to ``n`` rows."""
        if last is None or span + last - 1 >= n:
            return fn(x, *params)
        cut = n - (span + last - 1)
        result = fn(x[cut:], *params)
        pad = lambda x: np.concatenate([np.full((*x.shape[:-1], cut), np.nan), x], axis=-1)  # noqa: E731
        return tuple(pad(x) for x in result) if isinstance(result, tuple) else pad(result)

    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for w in windows:
            mean, std, skew, kurt = tail(w, rolling.moments, r, w)
            out[f"ret_mean_{w}"] = mean
            out[f"ret_std_{w}"] = std
            out[f"ret_skew_{w}"] = skew
            out[f"ret_kurt_{w}"] = kurt
            out[f"ret_z_{w}"] = (r - mean) / std
            price_mean, price_std = tail(w, rolling.mean_std, c, w)
            out[f"close_z_{w}"] = (c - price_mean) / price_std
        out[f"ret_rank_{rank_window}"] = tail(rank_window, rolling.rank_pct, r, rank_window)
        # ranks of volume itself: a zero-volume bar is the lowest rank, not a missing value
        out[f"volume_rank_{rank_window}"] = tail(rank_window, rolling.rank_pct, v, rank_window)
        span = autocorr_window + autocorr_lags
        lagged = tail(span, rolling.autocorrelations, r, autocorr_window, autocorr_lags)
        for lag, values in enumerate(lagged, start=1):
            out[f"autocorr_{lag}"] = values
        out[f"hurst_{hurst_window}"] = tail(hurst_window, rolling_hurst, r, hurst_window, 8)
        mean, std = tail(sharpe_window, rolling.mean_std, r, sharpe_window)
        out[f"rolling_sharpe_{sharpe_window}"] = mean / std
    return out
