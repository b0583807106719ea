"""Volatility features: realized, Parkinson, GARCH(1,1) fit on past data only."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.features import rolling
from ai_trade_bot.features._numba_kernels import garch_filter

logger = logging.getLogger(__name__)


def realized_volatility(log_ret: pd.Series | np.ndarray, window: int) -> Any:
    """Square root of the sum of squared log returns over the trailing window (a Series
    for a Series, an array for an array)."""
    values = np.sqrt(rolling.total(np.asarray(log_ret, dtype=np.float64) ** 2, window))
    return pd.Series(values, index=log_ret.index) if isinstance(log_ret, pd.Series) else values


def parkinson_volatility(
    high: pd.Series | np.ndarray, low: pd.Series | np.ndarray, window: int
) -> Any:
    """Parkinson (1980) range-based volatility per bar over the trailing window."""
    hl = np.log(np.asarray(high, dtype=np.float64) / np.asarray(low, dtype=np.float64)) ** 2
    values = np.sqrt(rolling.mean_std(hl, window)[0] / (4.0 * np.log(2.0)))
    return pd.Series(values, index=high.index) if isinstance(high, pd.Series) else values


@dataclass
class GarchState:
    """The GARCH(1,1) feature after ``position`` bars: parameters in force and the last
    filtered variance (NaN before the first fit)."""

    position: int = 0
    omega: float = float("nan")
    alpha: float = float("nan")
    beta: float = float("nan")
    var: float = float("nan")
    # A fit for the bar at ``position`` made ahead of it (see :func:`prefit_garch`):
    # [omega, alpha, beta, variance of its window]; None when there is none.
    ahead: list[float] | None = None


def _is_fit_point(position: int, *, refit_every: int, min_obs: int) -> bool:
    return position >= min_obs and (position - min_obs) % refit_every == 0


def _fit_window(returns: np.ndarray) -> np.ndarray:
    return returns[np.isfinite(returns)]


def prefit_garch(
    state: GarchState, past: np.ndarray, *, fit_window: int, refit_every: int, min_obs: int
) -> GarchState:
    """``state`` with the fit the next bar will use made now, when that bar is a refit
    point: the fit reads only returns before it, all known once the bar before it is done.
    The live runner calls this after a candle's decision is committed, so the refit (tens
    of milliseconds, more for long fit windows) is not on the next candle's path.
    :func:`garch_volatility` then uses it instead of fitting: the same window, the same
    parameters."""
    if not _is_fit_point(state.position, refit_every=refit_every, min_obs=min_obs):
        return state
    window = _fit_window(np.asarray(past, dtype=np.float64)[-fit_window:])
    if window.size < min_obs // 2:
        return state
    fit = _fit_garch(window, (state.omega, state.alpha, state.beta))
    return dataclasses.replace(state, ahead=[*fit, float(window.var())])


def _fit_garch(
    window: np.ndarray, previous: tuple[float, float, float] | None = None
) -> tuple[float, float, float]:
    """GARCH(1,1) with zero mean on ``window`` (rescaled to unit variance for the fit),
    warm-started from the ``previous`` fit's parameters when they are a valid model (arch's
    ``starting_values``: about 3 optimizer iterations instead of 10, half the time). The
    batch and live paths pass the same previous parameters, so they fit the same."""
    from arch import arch_model  # imported to fit only: it costs a second at start-up

    scale = 1.0 / window.std() if window.std() > 0 else 1.0
    start = None
    if previous is not None:
        w, a, b = previous
        if np.isfinite([w, a, b]).all() and w > 0 and a >= 0 and b >= 0 and a + b < 1:
            start = np.array([w * scale**2, a, b])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = arch_model(window * scale, mean="Zero", vol="GARCH", p=1, q=1, rescale=False).fit(
            disp="off", show_warning=False, starting_values=start
        )
    w, a, b = (float(res.params[k]) for k in ("omega", "alpha[1]", "beta[1]"))
    return w / scale**2, a, b


def garch_volatility(
    log_ret: pd.Series,
    *,
    fit_window: int,
    refit_every: int,
    min_obs: int,
    state: GarchState | None = None,
    past: np.ndarray | None = None,
) -> tuple[pd.DataFrame, GarchState]:
    """One-step-ahead GARCH(1,1) volatility, refit on a fixed schedule (``refit_every``
    bars: :class:`~ai_trade_bot.features.build.FeatureConfig` turns a period such as 30d
    into bars of the timeframe), each fit warm-started from the one before, filtered
    between.

    Fits happen at positions ``min_obs, min_obs + refit_every, ...`` (counted from the
    first bar ever seen, so truncating the history never moves them). The fit at position
    p uses only returns before p, at most ``fit_window`` of them; its parameters filter
    bars p .. p + refit_every - 1. So the value at t depends only on returns up to t.

    The rows of ``log_ret`` are bars ``state.position ...``; ``state`` carries the filter
    and the schedule across calls (None: the first bar ever), and ``past`` holds the
    returns before them (at least ``fit_window``, or all of them) for the fits. One call
    on a whole history and many calls on consecutive blocks give the same values.

    Returns:
        Columns ``garch_vol`` (forecast std of the next return) and ``garch_persistence``
        (alpha + beta of the parameters in force), and the state after the last row.
    """
    variance, persistence, after = garch_arrays(
        log_ret.to_numpy(dtype=np.float64),
        fit_window=fit_window,
        refit_every=refit_every,
        min_obs=min_obs,
        state=state,
        past=past,
    )
    frame = pd.DataFrame(
        {"garch_vol": np.sqrt(variance), "garch_persistence": persistence},
        index=log_ret.index,
    )
    return frame, after


def garch_arrays(
    eps: np.ndarray,
    *,
    fit_window: int,
    refit_every: int,
    min_obs: int,
    state: GarchState | None = None,
    past: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, GarchState]:
    """:func:`garch_volatility` of the log returns ``eps``: the forecast variances, the
    persistences and the state after the last row."""
    state = GarchState() if state is None else state
    past = np.zeros(0) if past is None else np.asarray(past, dtype=np.float64)
    full = np.concatenate([past, eps])
    n = eps.size
    start = state.position
    omega = np.full(n, state.omega)
    alpha = np.full(n, state.alpha)
    beta = np.full(n, state.beta)
    var0 = state.var
    previous = (state.omega, state.alpha, state.beta)  # the fit in force: a warm start
    first = max(min_obs, start)
    first += (min_obs - first) % refit_every  # the first fit point at or after ``start``
    for p in range(first, start + n, refit_every):
        k = p - start  # block row of the fit
        stop = min(n, k + refit_every)
        if p == start and state.ahead is not None:  # fitted ahead on this same window
            omega[k:stop], alpha[k:stop], beta[k:stop], window_var = state.ahead
            previous = (omega[k], alpha[k], beta[k])
            if np.isnan(var0):
                var0 = window_var
            continue
        window = _fit_window(full[max(0, past.size + k - fit_window) : past.size + k])
        if window.size < min_obs // 2:
            omega[k:stop] = alpha[k:stop] = beta[k:stop] = np.nan
            continue
        omega[k:stop], alpha[k:stop], beta[k:stop] = previous = _fit_garch(window, previous)
        if np.isnan(var0):
            var0 = float(window.var())
    variance = garch_filter(eps, omega, alpha, beta, var0 if np.isfinite(var0) else 0.0)
    done = np.flatnonzero(np.isfinite(variance))
    after = GarchState(
        position=start + n,
        omega=float(omega[-1]) if n else state.omega,
        alpha=float(alpha[-1]) if n else state.alpha,
        beta=float(beta[-1]) if n else state.beta,
        var=float(variance[done[-1]]) if done.size else var0,
    )
    return variance, alpha + beta, after
