"""Numba kernels for the two features that no library computes causally and fast.

Written by hand because pandas has no rolling Hurst estimator and arch has no
"refit on a schedule, filter in between" helper; both loops are sequential by nature.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _rescaled_range(x: np.ndarray) -> float:
    mean = x.mean()
    cum = 0.0
    lo = 0.0
    hi = 0.0
    ss = 0.0
    for v in x:
        d = v - mean
        cum += d
        lo = min(lo, cum)
        hi = max(hi, cum)
        ss += d * d
    std = np.sqrt(ss / x.size)
    if std == 0.0:
        return np.nan
    return (hi - lo) / std


@njit(cache=True)
def _chunk_sizes(window: int, min_chunk: int) -> np.ndarray:
    k = 0
    s = min_chunk
    while s <= window:
        k += 1
        s *= 2
    sizes = np.empty(k, dtype=np.int64)
    s = min_chunk
    for j in range(k):
        sizes[j] = s
        s *= 2
    return sizes


@njit(cache=True)
def rolling_hurst(returns: np.ndarray, window: int, min_chunk: int) -> np.ndarray:
    """Hurst exponent by rescaled-range regression over the trailing ``window`` returns.

    For chunk sizes ``min_chunk, 2*min_chunk, ...`` up to ``window`` the mean R/S over
    non-overlapping chunks is regressed on the chunk size in logs; the slope is H.
    Value at t uses returns[t-window+1 .. t] only; NaN when any of them is NaN.

    The chunks of the window ending at t are the chunks ending at t, t-size, t-2*size...,
    so the R/S of the chunk of each size ending at each bar is computed once (a table of
    ``len(sizes)`` rows) and every window reads its chunks from it: about a third of the
    work of computing each window's chunks afresh, with the same arithmetic and result.
    """
    n = returns.size
    out = np.full(n, np.nan)
    sizes = _chunk_sizes(window, min_chunk)
    k = sizes.size
    if n < window or k == 0:
        return out
    table = np.full((k, n), np.nan)
    for j in range(k):
        size = sizes[j]
        for end in range(size - 1, n):
            table[j, end] = _rescaled_range(returns[end - size + 1 : end + 1])
    missing = np.zeros(n + 1, dtype=np.int64)  # NaN returns before each position
    for i in range(n):
        missing[i + 1] = missing[i] + (1 if np.isnan(returns[i]) else 0)
    log_n = np.log(sizes.astype(np.float64))
    mx = log_n.mean()
    log_rs = np.empty(k)
    for t in range(window - 1, n):
        if missing[t + 1] - missing[t + 1 - window] > 0:
            continue
        ok = True
        for j in range(k):
            size = sizes[j]
            chunks = window // size
            total = 0.0
            for c in range(chunks):
                rs = table[j, t - c * size]
                if np.isnan(rs) or rs <= 0.0:
                    ok = False
                    break
                total += rs
            if not ok:
                break
            log_rs[j] = np.log(total / chunks)
        if not ok:
            continue
        my = log_rs.mean()
        out[t] = ((log_n - mx) * (log_rs - my)).sum() / ((log_n - mx) ** 2).sum()
    return out


@njit(cache=True)
def garch_filter(
    eps: np.ndarray, omega: np.ndarray, alpha: np.ndarray, beta: np.ndarray, var0: float
) -> np.ndarray:
    """One-step-ahead GARCH(1,1) variance forecasts with per-bar parameters.

    ``out[t]`` is the variance of eps[t+1] given eps[..t]; params at t were fit on data
    before t. NaN parameters (before the first fit) give NaN.
    """
    n = eps.size
    out = np.full(n, np.nan)
    var = var0
    for t in range(n):
        if np.isnan(omega[t]) or np.isnan(eps[t]):
            continue
        var = omega[t] + alpha[t] * eps[t] * eps[t] + beta[t] * var
        out[t] = var
    return out


@njit(cache=True)
def _log_sum_exp(x: np.ndarray) -> float:
    top = x.max()
    if not np.isfinite(top):
        return top
    return top + np.log(np.exp(x - top).sum())


@njit(cache=True)
def hmm_forward_filter(
    z: np.ndarray,
    means: np.ndarray,
    whiten: np.ndarray,
    log_norm: np.ndarray,
    log_a: np.ndarray,
    log_start: np.ndarray,
    previous: np.ndarray,
    has_previous: bool,
) -> np.ndarray:
    """Log P(state_t | z_1..t) of a Gaussian HMM by the forward recursion, normalised at
    every row. Each state's log density is ``log_norm - |(z - mean) @ whiten|^2 / 2``
    (``whiten`` maps the deviation to independent unit normals). The filter starts from
    ``log_start`` or, with ``has_previous``, after ``previous`` (the last row's log
    posterior).

    Written by hand: hmmlearn's filter smooths with future rows (it would leak) and a
    Python loop over scipy calls cost ~0.4 ms per live candle; the recursion is sequential
    by nature."""
    n, states, dim = z.shape[0], means.shape[0], z.shape[1]
    out = np.empty((n, states))
    emission = np.empty(states)
    alpha = np.empty(states)
    moved = np.empty(states)
    for t in range(n):
        for s in range(states):
            maha = 0.0
            for j in range(dim):
                acc = 0.0
                for i in range(dim):
                    acc += (z[t, i] - means[s, i]) * whiten[s, i, j]
                maha += acc * acc
            emission[s] = log_norm[s] - 0.5 * maha
        before = out[t - 1] if t else previous
        if t == 0 and not has_previous:
            for s in range(states):
                alpha[s] = log_start[s] + emission[s]
        else:
            for s in range(states):
                for r in range(states):
                    moved[r] = before[r] + log_a[r, s]
                alpha[s] = _log_sum_exp(moved) + emission[s]
        out[t] = alpha - _log_sum_exp(alpha)
    return out
