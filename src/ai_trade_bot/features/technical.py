"""Technical indicators from pandas-ta, turned scale-free (ratios, % or ATR distances)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas_ta as ta

from ai_trade_bot.errors import ConfigError


def _first(frame: pd.DataFrame, prefix: str) -> pd.Series:
    """Pick the first pandas-ta output column starting with ``prefix``."""
    for col in frame.columns:
        if col.startswith(prefix):
            return frame[col]
    raise KeyError(f"pandas-ta output has no column starting with {prefix!r}: {list(frame)}")


_DAY_NS = 86_400_000_000_000


def period_codes(index: pd.DatetimeIndex, anchor: str) -> np.ndarray:
    """An integer per bar that changes when the ``anchor`` period (UTC) changes: ``D``
    (day), ``W`` (week from Monday) or ``M`` (calendar month), as ``to_period`` does."""
    days = index.asi8 // _DAY_NS
    anchor = anchor.upper()
    if anchor == "D":
        return days
    if anchor == "W":
        return (days + 3) // 7  # 1970-01-01 was a Thursday: weeks start on Mondays
    if anchor == "M":
        return np.asarray(index.year * 12 + index.month, dtype=np.int64)
    raise ConfigError(f"features.vwap_anchor must be D, W, M or auto, got {anchor!r}")


def anchored_vwap(
    high: pd.Series, low: pd.Series, close: pd.Series, volume: pd.Series, anchor: str
) -> pd.Series:
    """VWAP of the typical price, reset every ``anchor`` period (pandas-ta's formula).

    Written by hand for two reasons: pandas-ta groups by ``to_period`` objects, which took
    about 2.5 s per million bars (most of the feature build), and where nothing has traded
    yet in a period (zero volume) its 0/0 leaves a NaN; here that bar's VWAP is the
    period's mean typical price so far, so a zero-volume bar blanks no row.
    """
    typical = ((high + low + close) / 3.0).to_numpy(dtype=np.float64)
    vol = volume.to_numpy(dtype=np.float64)
    codes = period_codes(close.index, anchor)
    grouped = pd.DataFrame({"pv": typical * vol, "v": vol, "tp": typical, "n": 1.0})
    sums = grouped.groupby(codes).cumsum()
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = np.where(
            sums["v"].to_numpy() > 0,
            sums["pv"].to_numpy() / sums["v"].to_numpy(),
            sums["tp"].to_numpy() / sums["n"].to_numpy(),
        )
    return pd.Series(vwap, index=close.index)


def directional_movement(
    high: pd.Series, low: pd.Series, close: pd.Series, length: int = 14
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """ADX, +DI and -DI as ``ta.adx`` computes them by default (Wilder's RMA of the
    directional moves scaled by ATR), from pandas-ta's own ``atr`` and ``rma``.

    Only the directional moves are written here: ``ta.adx`` zeroes near-zero moves with a
    Python function applied to every element, about 1.2 s per million bars (the largest
    single cost of the technical features); the vectorised mask below gives the same
    values (tests compare with ``ta.adx``).
    """
    atr = ta.atr(high, low, close, length=length, prenan=True)
    k = 100.0 / atr
    up = high - high.shift(1)
    dn = low.shift(1) - low
    pos = ((up > dn) & (up > 0)) * up
    neg = ((dn > up) & (dn > 0)) * dn
    eps = np.finfo(np.float64).eps  # pandas-ta's ``zero``: |x| < epsilon is 0
    pos = pos.mask(pos.abs() < eps, 0.0)
    neg = neg.mask(neg.abs() < eps, 0.0)
    dmp = k * ta.rma(pos, length=length)
    dmn = k * ta.rma(neg, length=length)
    dx = 100.0 * (dmp - dmn).abs() / (dmp + dmn)
    return ta.rma(dx, length=length), dmp, dmn


def technical_features(
    ohlcv: pd.DataFrame,
    *,
    sma_lengths: tuple[int, ...] = (10, 20, 50, 200),
    ema_lengths: tuple[int, ...] = (12, 26),
    rsi_length: int = 14,
    atr_length: int = 14,
    vwap_anchor: str = "W",
) -> pd.DataFrame:
    """Indicators named in the design documents, as scale-free columns.

    Prices become distances: ``close / SMA - 1``, MACD divided by ATR, band positions in
    [0, 1]-ish units, ATR as a fraction of price, OBV as a change over a window relative
    to traded volume.
    """
    o, h, lo, c, v = (ohlcv[k] for k in ("open", "high", "low", "close", "volume"))
    out: dict[str, pd.Series] = {}
    for n in sma_lengths:
        out[f"sma_{n}_dist"] = c / ta.sma(c, length=n) - 1.0
    for n in ema_lengths:
        out[f"ema_{n}_dist"] = c / ta.ema(c, length=n) - 1.0
    atr = ta.atr(h, lo, c, length=atr_length)
    out[f"atr_{atr_length}_pct"] = atr / c
    macd = ta.macd(c, fast=12, slow=26, signal=9)
    out["macd_atr"] = _first(macd, "MACD_") / atr
    out["macd_signal_atr"] = _first(macd, "MACDs_") / atr
    out["macd_hist_atr"] = _first(macd, "MACDh_") / atr
    out["adx_14"], out["dmp_14"], out["dmn_14"] = directional_movement(h, lo, c, length=14)
    out[f"rsi_{rsi_length}"] = ta.rsi(c, length=rsi_length)
    stoch = ta.stoch(h, lo, c, k=14, d=3, smooth_k=3)
    out["stoch_k"] = _first(stoch, "STOCHk_")
    out["stoch_d"] = _first(stoch, "STOCHd_")
    out["roc_10"] = ta.roc(c, length=10)
    out["willr_14"] = ta.willr(h, lo, c, length=14)
    bb = ta.bbands(c, length=20, std=2)
    out["bb_pctb"] = _first(bb, "BBP_")
    out["bb_width"] = _first(bb, "BBB_") / 100.0
    kc = ta.kc(h, lo, c, length=20, scalar=2)
    lower, mid, upper = _first(kc, "KCL"), _first(kc, "KCB"), _first(kc, "KCU")
    out["kc_position"] = (c - mid) / (upper - lower)
    vwap = anchored_vwap(h, lo, c, v, vwap_anchor)
    out["vwap_dist_atr"] = (c - vwap) / atr
    obv = ta.obv(c, v)
    out["obv_flow_60"] = obv.diff(60) / v.rolling(60).sum().replace(0.0, np.nan)
    out["body_atr"] = (c - o) / atr
    out["range_atr"] = (h - lo) / atr
    return pd.DataFrame(out, index=ohlcv.index)
