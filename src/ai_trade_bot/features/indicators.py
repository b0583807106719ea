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
def _ewm(
    x: np.ndarray, com: float, weighted: float, old_wt: float
) -> tuple[np.ndarray, float, float]:
    """``pd.Series(x).ewm(com=com, adjust=False).mean()``: pandas' recursion, operation
    for operation (its weights, its skip of an unchanged value, NaN until the first value
    and carried over later NaNs), continued from the state (``weighted``, ``old_wt``) it
    had after the values before ``x`` (NaN, 1.0: none); returns the state after ``x`` too.
    :func:`ewm_step` is the same recursion for one value (the live path's carried state)."""
    n = x.size
    out = np.empty(n)
    alpha = 1.0 / (1.0 + com)
    old_wt_factor = 1.0 - alpha
    new_wt = alpha
    for i in range(n):
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
    return out, weighted, old_wt


def _ewm_mean(x: np.ndarray, com: float, carry: list | None = None) -> np.ndarray:
    """:func:`_ewm` from the start; ``carry`` (a list) receives the state after ``x``."""
    out, weighted, old_wt = _ewm(x, com, np.nan, 1.0)
    if carry is not None:
        carry[:] = [float(weighted), float(old_wt)]
    return out


def ewm_step(carry: list, cur: float, com: float) -> float:
    """One more value of :func:`_ewm` from its carried state ``carry`` ([weighted,
    old_wt], updated in place): the same floating-point operations in the same order, so
    the value equals the batch recursion's bit for bit (tests check it)."""
    weighted, old_wt = np.float64(carry[0]), carry[1]
    alpha = 1.0 / (1.0 + com)
    if weighted == weighted:
        old_wt *= 1.0 - alpha
        if cur == cur:
            if weighted != cur:
                weighted = ((old_wt * weighted) + (alpha * cur)) / (old_wt + alpha)
            old_wt = 1.0
    elif cur == cur:
        weighted = np.float64(cur)
    carry[0], carry[1] = float(weighted), float(old_wt)
    return weighted


def ema_com(length: int) -> float:
    """The ``com`` of ``ta.ema(length)``."""
    return (length - 1) / 2.0


def rma_com(length: int) -> float:
    """The ``com`` of ``ta.rma(length)`` (Wilder's ``alpha = 1 / length``)."""
    alpha = 1.0 / length
    return (1.0 - alpha) / alpha


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


def ema(x: np.ndarray, length: int, carry: list | None = None) -> np.ndarray:
    """``ta.ema`` (seeded with the SMA of the first ``length`` values); ``carry``: see
    :func:`_ewm_mean`."""
    if x.size < length:
        return _nan(x.size)
    return _ewm_mean(_presma(x, length), ema_com(length), carry)


def rma(x: np.ndarray, length: int, carry: list | None = None) -> np.ndarray:
    """``ta.rma``: Wilder's average, ``ewm(alpha=1/length, adjust=False)``."""
    if x.size < length:
        return _nan(x.size)
    return _ewm_mean(np.asarray(x, dtype=np.float64), rma_com(length), carry)


def non_zero_range(
    x: np.ndarray, y: np.ndarray, zero_seen: bool = False, carry: dict | None = None, key: str = ""
) -> np.ndarray:
    """``x - y``, plus epsilon everywhere when any difference is 0 (pandas-ta's rule).

    The rule reads the whole array, so a batch value can move by an epsilon when a zero
    range comes later; the live path applies it to the history so far instead:
    ``zero_seen`` says a zero range came earlier, and ``carry[key]`` receives whether
    one has come by the end of ``x``."""
    diff = x - y
    zero = zero_seen or bool((diff == 0).any())
    if carry is not None:
        carry[key] = zero
    if zero:
        diff = diff + _EPS
    return diff


def true_range(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    prenan: bool = False,
    zero_seen: bool = False,
    carry: dict | None = None,
) -> np.ndarray:
    """``ta.true_range``: the largest of the bar's range and the gaps to the last close
    (``zero_seen``, ``carry``: :func:`non_zero_range`'s, under ``zero_tr``)."""
    prev = np.concatenate([[np.nan], close[:-1]])
    bar_range = non_zero_range(high, low, zero_seen, carry, "zero_tr")
    ranges = np.abs(np.vstack([bar_range, high - prev, prev - low]))
    out = np.fmax(np.fmax(ranges[0], ranges[1]), ranges[2])
    if prenan:
        out[:1] = np.nan
    return out


def atr(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    length: int,
    prenan: bool = False,
    carry: list | None = None,
) -> np.ndarray:
    """``ta.atr``: Wilder's average of the true range, seeded with its SMA."""
    if high.size < length + 1:
        return _nan(high.size)
    return rma(_presma(true_range(high, low, close, prenan), length), length, carry)


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


def rsi(close: np.ndarray, length: int, carry: dict | None = None) -> np.ndarray:
    """``ta.rsi`` (Wilder's averages of gains and losses; ``carry`` receives their states
    under ``rsi_up`` and ``rsi_down``)."""
    if close.size < length + 1:
        return _nan(close.size)
    change = np.concatenate([[np.nan], np.diff(close)])
    gains = np.where(change < 0, 0.0, change)
    losses = np.where(change > 0, 0.0, change)
    up = rma(gains, length, slot(carry, "rsi_up"))
    down = rma(losses, length, slot(carry, "rsi_down"))
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 on flat prices: NaN
        return 100.0 * up / (up + np.abs(down))


def slot(carry: dict | None, key: str) -> list | None:
    """A new list in ``carry`` under ``key`` for a recursion's state (None: no carry)."""
    if carry is None:
        return None
    carry[key] = []
    return carry[key]


def macd(
    close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9, carry: dict | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``ta.macd``: the line, its signal (an EMA from the line's first value) and the
    histogram (``carry``: the states under ``macd_fast``, ``macd_slow``, ``macd_signal``)."""
    line = ema(close, fast, slot(carry, "macd_fast")) - ema(close, slow, slot(carry, "macd_slow"))
    sig = _from_first_valid(line, ema, signal, slot(carry, "macd_signal"))
    return line, sig, line - sig


def stoch(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    k: int = 14,
    d: int = 3,
    smooth_k: int = 3,
    zero_seen: bool = False,
    carry: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``ta.stoch``: %K smoothed by an SMA of ``smooth_k`` and %D, its SMA of ``d``
    (``zero_seen``, ``carry``: :func:`non_zero_range`'s, under ``zero_stoch``)."""
    lowest, highest = rolling_min(low, k), rolling_max(high, k)
    raw = 100.0 * (close - lowest) / non_zero_range(highest, lowest, zero_seen, carry, "zero_stoch")
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


def bbands(
    close: np.ndarray,
    length: int = 20,
    std: float = 2.0,
    zero_seen: tuple[bool, bool] = (False, False),
    carry: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``ta.bbands``' %B and bandwidth (in %): an SMA mid band +- ``std`` sample
    standard deviations (``zero_seen``, ``carry``: :func:`non_zero_range`'s for the width
    and the close's distance to the lower band, under ``zero_bb_width``, ``zero_bb_low``)."""
    deviation = std * rolling_std(close, length)
    mid = sma(close, length)
    lower, upper = mid - deviation, mid + deviation
    width = non_zero_range(upper, lower, zero_seen[0], carry, "zero_bb_width")
    above = non_zero_range(close, lower, zero_seen[1], carry, "zero_bb_low")
    return above / width, 100.0 * width / mid


def keltner_position(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    length: int = 20,
    scalar: float = 2.0,
    carry: dict | None = None,
) -> np.ndarray:
    """Where the close sits in ``ta.kc``'s channel: (close - basis) / (upper - lower),
    with EMA basis and an EMA of the true range as the band (``carry``: their states
    under ``kc_basis``, ``kc_band``)."""
    basis = ema(close, length, slot(carry, "kc_basis"))
    band = ema(true_range(high, low, close), length, slot(carry, "kc_band"))
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


def obv(close: np.ndarray, volume: np.ndarray, carry: dict | None = None) -> np.ndarray:
    """``ta.obv``: the running sum of volume signed by the close's change (the first bar,
    which has no change, is NaN; pandas' cumsum skips it). ``carry`` receives the running
    sum under ``obv``."""
    sign = np.sign(np.concatenate([[np.nan], np.diff(close)]))
    signed = sign * volume
    out = np.nancumsum(signed)
    if carry is not None and out.size:
        carry["obv"] = float(out[-1])
    out[np.isnan(signed)] = np.nan
    return out
