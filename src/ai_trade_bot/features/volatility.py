"""Volatility features: realized, Parkinson, GARCH(1,1) fit on past data only."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from arch import arch_model

from ai_trade_bot.features._numba_kernels import garch_filter

logger = logging.getLogger(__name__)


def realized_volatility(log_ret: pd.Series, window: int) -> pd.Series:
    """Square root of the sum of squared log returns over the trailing window."""
    return np.sqrt((log_ret**2).rolling(window).sum())


def parkinson_volatility(high: pd.Series, low: pd.Series, window: int) -> pd.Series:
    """Parkinson (1980) range-based volatility per bar over the trailing window."""
    hl = np.log(high / low) ** 2
    return np.sqrt(hl.rolling(window).mean() / (4.0 * np.log(2.0)))


def garch_volatility(
    log_ret: pd.Series,
    *,
    fit_window: int,
    refit_every: int,
    min_obs: int,
) -> pd.DataFrame:
    """One-step-ahead GARCH(1,1) volatility, refit on a fixed schedule, filtered between.

    Fits happen at positions ``min_obs, min_obs + refit_every, ...`` (counted from the
    first bar, so truncating the history never moves them). The fit at position p uses
    only returns before p, at most ``fit_window`` of them; its parameters filter bars
    p .. p + refit_every - 1. So the value at t depends only on returns up to t.

    Returns:
        Columns ``garch_vol`` (forecast std of the next return) and ``garch_persistence``
        (alpha + beta of the parameters in force).
    """
    eps = log_ret.to_numpy(dtype=np.float64)
    n = eps.size
    omega = np.full(n, np.nan)
    alpha = np.full(n, np.nan)
    beta = np.full(n, np.nan)
    var0 = np.nan
    for p in range(min_obs, n, refit_every):
        window = eps[max(0, p - fit_window) : p]
        window = window[np.isfinite(window)]
        if window.size < min_obs // 2:
            continue
        scale = 1.0 / window.std() if window.std() > 0 else 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = arch_model(window * scale, mean="Zero", vol="GARCH", p=1, q=1, rescale=False).fit(
                disp="off", show_warning=False
            )
        w, a, b = (float(res.params[k]) for k in ("omega", "alpha[1]", "beta[1]"))
        stop = min(n, p + refit_every)
        omega[p:stop] = w / scale**2
        alpha[p:stop] = a
        beta[p:stop] = b
        if np.isnan(var0):
            var0 = float(window.var())
    variance = garch_filter(eps, omega, alpha, beta, var0 if np.isfinite(var0) else 0.0)
    return pd.DataFrame(
        {"garch_vol": np.sqrt(variance), "garch_persistence": alpha + beta},
        index=log_ret.index,
    )
