"""The newest bar's technical features from carried state: O(1) a bar for the recursions.

The live path used to recompute every technical indicator over a trailing window of about
1,000 bars for each new candle, so that the recursive ones (EMA, RSI, ATR, ADX, MACD,
Keltner) converged to the batch values; ~1 ms a symbol, the largest piece of the feature
step. Here each recursion carries its state from bar to bar
(:func:`ai_trade_bot.features.indicators.ewm_step`, the batch kernel's operations in the
same order), the VWAP its period sums and the OBV its running sum and last 60 values; the
window indicators (SMA, stochastic, Williams %R, ROC, Bollinger bands) read only the bars
they need. The state comes from the batch pass
(:func:`ai_trade_bot.features.technical.technical_columns` with ``carry``), so the values
equal the batch features on the same history bit for bit (tests compare every column and
the runner's parity test compares every row).

Written by hand: talipp and friends update these indicators incrementally, but with their
own seeds and arithmetic, which would break the exact parity between the live runner and
the backtest that trained and judged the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ai_trade_bot.features import indicators as ind
from ai_trade_bot.features import rolling
from ai_trade_bot.features.technical import period_codes

# the recursions every carry holds (their [weighted, old_wt]), besides ema_<n> per length
RECURSIONS = (
    "atr",
    "macd_fast",
    "macd_slow",
    "macd_signal",
    "adx_atr",
    "adx_pos",
    "adx_neg",
    "adx",
    "rsi_up",
    "rsi_down",
    "kc_basis",
    "kc_band",
)
_FLAGS = ("zero_tr", "zero_stoch", "zero_bb_width", "zero_bb_low")
_OBV_SPAN = 60
_EPS = float(np.finfo(np.float64).eps)


def usable(carry: dict | None, ema_lengths: tuple[int, ...], lags: int) -> bool:
    """Whether ``carry`` can give the next row: every recursion seeded (a history shorter
    than an indicator's length leaves it unseeded), every running sum present and the
    ``lags`` RSI values the lagged columns read."""
    if not carry:
        return False
    names = (*RECURSIONS, *(f"ema_{n}" for n in ema_lengths))
    seeded = all(len(carry.get(k) or ()) == 2 and carry[k][0] == carry[k][0] for k in names)
    return (
        seeded
        and all(k in carry for k in (*_FLAGS, "vwap", "obv"))
        and len(carry.get("obv_tail", ())) == _OBV_SPAN
        and len(carry.get("rsi_tail", ())) == lags
    )


def technical_row(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
    *,
    index: pd.DatetimeIndex,
    carry: dict,
    sma_lengths: tuple[int, ...],
    ema_lengths: tuple[int, ...],
    rsi_length: int,
    atr_length: int,
    vwap_anchor: str,
) -> tuple[dict[str, np.ndarray], dict]:
    """The newest bar's :func:`~ai_trade_bot.features.technical.technical_columns` (one
    value per column; ``rsi_<n>`` also its earlier values that ``carry`` keeps under
    ``rsi_tail``, for the lagged columns) and the carry after it.

    The arrays are a trailing window ending at the newest bar (at least the longest SMA
    and 60 bars); ``carry`` is the state after the bar before it (left unchanged)."""
    after = {k: list(x) if isinstance(x, list) else x for k, x in carry.items()}
    f8 = np.float64
    close, high, low, prev = f8(c[-1]), f8(h[-1]), f8(lo[-1]), f8(c[-2])
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for n in sma_lengths:
            out[f"sma_{n}_dist"] = close / rolling.mean(c[-n:], n)[-1:] - 1.0
        for n in ema_lengths:
            out[f"ema_{n}_dist"] = np.array(
                [close / ind.ewm_step(after[f"ema_{n}"], close, ind.ema_com(n)) - 1.0]
            )
        # the bar's true range (pandas-ta's zero-range rule on the history so far)
        tr = ind.true_range(h[-2:], lo[-2:], c[-2:], zero_seen=after["zero_tr"], carry=after)[-1]
        atr = ind.ewm_step(after["atr"], tr, ind.rma_com(atr_length))
        out[f"atr_{atr_length}_pct"] = np.array([atr / close])
        fast = ind.ewm_step(after["macd_fast"], close, ind.ema_com(12))
        slow = ind.ewm_step(after["macd_slow"], close, ind.ema_com(26))
        line = fast - slow
        signal = ind.ewm_step(after["macd_signal"], line, ind.ema_com(9))
        out["macd_atr"] = np.array([line / atr])
        out["macd_signal_atr"] = np.array([signal / atr])
        out["macd_hist_atr"] = np.array([(line - signal) / atr])
        out["adx_14"], out["dmp_14"], out["dmn_14"] = _adx(after, h, lo, tr, 14)
        gain = f8(close - prev)
        up = ind.ewm_step(after["rsi_up"], f8(0.0) if gain < 0 else gain, ind.rma_com(rsi_length))
        down = ind.ewm_step(
            after["rsi_down"], f8(0.0) if gain > 0 else gain, ind.rma_com(rsi_length)
        )
        rsi = 100.0 * up / (up + abs(down))
        tail = after.get("rsi_tail", [])
        out[f"rsi_{rsi_length}"] = np.array([*tail, rsi])
        stoch_rows = 14 + 3 + 3 - 2
        k_line, d_line = ind.stoch(
            h[-stoch_rows:], lo[-stoch_rows:], c[-stoch_rows:], 14, 3, 3, after["zero_stoch"], after
        )
        out["stoch_k"], out["stoch_d"] = k_line[-1:], d_line[-1:]
        out["roc_10"] = ind.roc(c[-11:], 10)[-1:]
        out["willr_14"] = ind.willr(h[-14:], lo[-14:], c[-14:], 14)[-1:]
        flags = (after["zero_bb_width"], after["zero_bb_low"])
        pctb, width = ind.bbands(c[-20:], 20, 2.0, flags, after)
        out["bb_pctb"] = pctb[-1:]
        out["bb_width"] = width[-1:] / 100.0
        basis = ind.ewm_step(after["kc_basis"], close, ind.ema_com(20))
        band = ind.ewm_step(after["kc_band"], tr, ind.ema_com(20))
        lower, upper = basis - 2.0 * band, basis + 2.0 * band
        out["kc_position"] = np.array([(close - basis) / (upper - lower)])
        vwap = _vwap_step(after, high, low, close, f8(v[-1]), period_codes(index[-1:], vwap_anchor))
        out["vwap_dist_atr"] = np.array([(close - vwap) / atr])
        volume_60 = rolling.total(v[-_OBV_SPAN:], _OBV_SPAN)[-1]
        volume_60 = np.nan if volume_60 == 0.0 else volume_60
        obv = _obv_step(after, close, prev, f8(v[-1]))
        out["obv_flow_60"] = np.array([(obv - after["obv_tail"][0]) / volume_60])
        after["obv_tail"] = [*after["obv_tail"][1:], float(obv)]
        out["body_atr"] = np.array([(close - f8(o[-1])) / atr])
        out["range_atr"] = np.array([(high - low) / atr])
    return out, after


def _adx(
    after: dict, h: np.ndarray, lo: np.ndarray, tr: np.float64, length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The newest ADX, +DI and -DI (:func:`~ai_trade_bot.features.technical.
    _directional_movement`, one bar)."""
    com = ind.rma_com(length)
    k = 100.0 / ind.ewm_step(after["adx_atr"], tr, com)
    up = np.float64(h[-1] - h[-2])
    dn = -np.float64(lo[-1] - lo[-2])
    pos = up if (up > dn and up > 0) else np.float64(0.0)
    neg = dn if (dn > up and dn > 0) else np.float64(0.0)
    pos = np.float64(0.0) if abs(pos) < _EPS else pos
    neg = np.float64(0.0) if abs(neg) < _EPS else neg
    dmp = k * ind.ewm_step(after["adx_pos"], pos, com)
    dmn = k * ind.ewm_step(after["adx_neg"], neg, com)
    dx = 100.0 * abs(dmp - dmn) / (dmp + dmn)
    adx = ind.ewm_step(after["adx"], dx, com)
    return np.array([adx]), np.array([dmp]), np.array([dmn])


def _vwap_step(
    after: dict,
    high: np.float64,
    low: np.float64,
    close: np.float64,
    volume: np.float64,
    codes: np.ndarray,
) -> np.float64:
    """The anchored VWAP after one more bar (:func:`ai_trade_bot.features.technical.
    _anchored_vwap`'s running sums, restarted when the period changes)."""
    code, pv, v, tp, n = after["vwap"]
    typical = (high + low + close) / 3.0
    if int(codes[0]) != code:
        pv = v = tp = n = 0.0
    pv, v, tp, n = pv + typical * volume, v + volume, tp + typical, n + 1.0
    after["vwap"] = [int(codes[0]), float(pv), float(v), float(tp), float(n)]
    return np.float64(pv / v) if v > 0 else np.float64(tp / n)


def _obv_step(after: dict, close: np.float64, prev: np.float64, volume: np.float64) -> np.float64:
    """The OBV's running sum after one more bar (:func:`ai_trade_bot.features.indicators.obv`)."""
    signed = np.sign(close - prev) * volume
    total = np.float64(after["obv"]) + (0.0 if signed != signed else signed)
    after["obv"] = float(total)
    return total
