"""pandas-ta's indicators, computed on numpy arrays with pandas-ta's own formulas.

The technical features used to call ``pandas_ta`` on Series. Each call validates its
inputs and builds a dozen intermediate Series: about 80 µs apiece and 150 of them per
feature row, 12 ms of the live runner's ~55 ms per candle, for arrays of ~1,000 values.
These functions take arrays and follow pandas-ta 0.4 step by step (the same SMA seed of
an EMA or ATR, the same ``non_zero_range`` epsilon, the same exponential average as
``Series.ewm(adjust=False).mean()``, pandas-ta's own ROC kernel), so the values equal
pandas-ta's (tests compare every column with pandas-ta on both bundled datasets). The
exponential average and the window means are numba kernels; everything else is numpy.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from pandas_ta.momentum.roc import nb_roc

from ai_trade_bot.features import rolling

_EPS = float(np.finfo(np.float64).eps)


@njit(cache=True)
def _ewm_mean(x: np.ndarray, com: float) -> np.ndarray:
    """``pd.Series(x).ewm(com=com, adjust=False).mean()``: pandas' recursion, operation
    for operation (its weights, its skip of an unchanged value, NaN until the first value
    and carried over later NaNs)."""
    n = x.size
    out = np.empty(n)
    if n == 0:
        return out
    alpha = 1.0 / (1.0 + com)
    old_wt_factor = 1.0 - alpha
    new_wt = alpha
    weighted = x[0]
    out[0] = weighted
    old_wt = 1.0
    for i in range(1, n):
        cur = x[i]
        observed = cur == cur
        if weighted == weighted:
            old_wt *= old_wt_factor
            if observed:
                if weighted != cur:
                    weighted = ((old_wt * weighted) + (new_wt * cur)) / (old_wt + new_wt)
                old_wt = 1.0
        elif observed:
            weighted = cur
        out[i] = weighted
    return out


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def _from_first_valid(x: np.ndarray, fn, *args) -> np.ndarray:
    """``fn`` on ``x`` from its first value on (pandas-ta's ``.loc[first_valid_index():]``),
    NaN before it."""
    valid = np.flatnonzero(~np.isnan(x))
    out = _nan(x.size)
    if valid.size:
        out[valid[0] :] = fn(x[valid[0] :], *args)
    return out


def sma(x: np.ndarray, length: int) -> np.ndarray:
    """``ta.sma``: the mean of each window of ``length`` (NaN before the first full one,
    and for a window holding a NaN). pandas-ta's own kernel convolves with a numba
    ``np.convolve``, ~80 µs a call even for ten values; each window's sum here is the
    same arithmetic in another order (equal to 1e-15)."""
    return rolling.mean(np.ascontiguousarray(x, dtype=np.float64), length)


def _presma(x: np.ndarray, length: int) -> np.ndarray:
    """pandas-ta's seed: the first ``length`` values become NaN and their mean."""
    seeded = x.astype(np.float64, copy=True)
    first = seeded[:length]
    seeded[length - 1] = np.nanmean(first) if np.isnan(first).any() else first.mean()
    seeded[: length - 1] = np.nan
    return seeded


def ema(x: np.ndarray, length: int) -> np.ndarray:
    """``ta.ema`` (seeded with the SMA of the first ``length`` values)."""
    if x.size < length:
        return _nan(x.size)
    return _ewm_mean(_presma(x, length), (length - 1) / 2.0)


def rma(x: np.ndarray, length: int) -> np.ndarray:
    """``ta.rma``: Wilder's average, ``ewm(alpha=1/length, adjust=False)``."""
    if x.size < length:
        return _nan(x.size)
    alpha = 1.0 / length
    return _ewm_mean(np.asarray(x, dtype=np.float64), (1.0 - alpha) / alpha)


def non_zero_range(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x - y``, plus epsilon everywhere when any difference is 0 (pandas-ta's rule)."""
    diff = x - y
    if (diff == 0).any():
        diff = diff + _EPS
    return diff


def true_range(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, prenan: bool = False
) -> np.ndarray:
    """``ta.true_range``: the largest of the bar's range and the gaps to the last close."""
    prev = np.concatenate([[np.nan], close[:-1]])
    ranges = np.abs(np.vstack([non_zero_range(high, low), high - prev, prev - low]))
    out = np.fmax(np.fmax(ranges[0], ranges[1]), ranges[2])
    if prenan:
        out[:1] = np.nan
    return out


def atr(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, length: int, prenan: bool = False
) -> np.ndarray:
    """``ta.atr``: Wilder's average of the true range, seeded with its SMA."""
    if high.size < length + 1:
        return _nan(high.size)
    return rma(_presma(true_range(high, low, close, prenan), length), length)


def rolling_min(x: np.ndarray, length: int) -> np.ndarray:
    """``Series.rolling(length).min()`` (a minimum is exact, whatever the order)."""
    return rolling.extreme(np.ascontiguousarray(x, dtype=np.float64), length, False)


def rolling_max(x: np.ndarray, length: int) -> np.ndarray:
    """``Series.rolling(length).max()``."""
    return rolling.extreme(np.ascontiguousarray(x, dtype=np.float64), length, True)


def rolling_std(x: np.ndarray, length: int) -> np.ndarray:
    """Sample standard deviation (ddof 1) of each full window, two-pass per window.

    pandas' rolling ``var`` adds and removes values from running sums, so its last digits
    depend on where the series starts; this one depends on the window only (the live
    runner's trailing window and the full history give the same value)."""
    return rolling.mean_std(np.ascontiguousarray(x, dtype=np.float64), length)[1]


def rsi(close: np.ndarray, length: int) -> np.ndarray:
    """``ta.rsi`` (Wilder's averages of gains and losses)."""
    if close.size < length + 1:
        return _nan(close.size)
    change = np.concatenate([[np.nan], np.diff(close)])
    gains = np.where(change < 0, 0.0, change)
    losses = np.where(change > 0, 0.0, change)
    up, down = rma(gains, length), rma(losses, length)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 on flat prices: NaN
        return 100.0 * up / (up + np.abs(down))


def macd(
    close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``ta.macd``: the line, its signal (an EMA from the line's first value) and the
    histogram."""
    line = ema(close, fast) - ema(close, slow)
    sig = _from_first_valid(line, ema, signal)
    return line, sig, line - sig


def stoch(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, k: int = 14, d: int = 3, smooth_k: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """``ta.stoch``: %K smoothed by an SMA of ``smooth_k`` and %D, its SMA of ``d``."""
    lowest, highest = rolling_min(low, k), rolling_max(high, k)
    raw = 100.0 * (close - lowest) / non_zero_range(highest, lowest)
    k_line = _from_first_valid(raw, sma, smooth_k) if smooth_k > 1 else raw
    return k_line, _from_first_valid(k_line, sma, d)


def willr(high: np.ndarray, low: np.ndarray, close: np.ndarray, length: int = 14) -> np.ndarray:
    """``ta.willr``."""
    lowest, highest = rolling_min(low, length), rolling_max(high, length)
    return 100.0 * ((close - lowest) / (highest - lowest) - 1.0)


def roc(close: np.ndarray, length: int = 10) -> np.ndarray:
    """``ta.roc`` (pandas-ta's own kernel)."""
    if close.size < length:
        return _nan(close.size)
    return nb_roc(np.ascontiguousarray(close, dtype=np.float64), length, 100.0)


def bbands(close: np.ndarray, length: int = 20, std: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """``ta.bbands``' %B and bandwidth (in %): an SMA mid band +- ``std`` sample
    standard deviations."""
    deviation = std * rolling_std(close, length)
    mid = sma(close, length)
    lower, upper = mid - deviation, mid + deviation
    width = non_zero_range(upper, lower)
    return non_zero_range(close, lower) / width, 100.0 * width / mid


def keltner_position(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, length: int = 20, scalar: float = 2.0
) -> np.ndarray:
    """Where the close sits in ``ta.kc``'s channel: (close - basis) / (upper - lower),
    with EMA basis and an EMA of the true range as the band."""
    basis = ema(close, length)
    band = ema(true_range(high, low, close), length)
    lower, upper = basis - scalar * band, basis + scalar * band
    return (close - basis) / (upper - lower)


@njit(cache=True)
def period_cumsum(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Running sum of ``x`` that restarts where ``codes`` changes (consecutive periods),
    summed in order as ``groupby(codes).cumsum()`` does."""
    out = np.empty(x.size)
    acc = 0.0
    for i in range(x.size):
        if i == 0 or codes[i] != codes[i - 1]:
            acc = 0.0
        acc += x[i]
        out[i] = acc
    return out


def obv(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """``ta.obv``: the running sum of volume signed by the close's change (the first bar,
    which has no change, is NaN; pandas' cumsum skips it)."""
    sign = np.sign(np.concatenate([[np.nan], np.diff(close)]))
    signed = sign * volume
    out = np.nancumsum(signed)
    out[np.isnan(signed)] = np.nan
    return out
