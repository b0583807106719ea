"""Realistic synthetic markets for tests: calendars, volatility clustering, seasonality.

- ``crypto``: trades every bar, 24/7.
- ``fx``: Sunday 22:00 to Friday 21:00 UTC.
- ``equity``: weekdays only, minus a few holidays; intraday bars within 14:30-21:00 UTC.

Returns follow a GARCH(1,1) with Student-t shocks and, intraday, a U-shaped volatility
over the day; volume rises with the absolute return. ``zero_volume`` bars carry volume 0
(a holiday-thinned session, an exchange outage).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ai_trade_bot.data.timeframes import timeframe_to_timedelta


def _calendar(market: str, timeframe: str, start: str, n: int) -> pd.DatetimeIndex:
    bar = timeframe_to_timedelta(timeframe)
    # enough candidate stamps to keep n after the calendar filter
    candidates = pd.date_range(start, periods=int(n * 7) + 100, freq=bar, tz="UTC")
    minutes = candidates.hour * 60 + candidates.minute
    dow = candidates.dayofweek
    if market == "crypto":
        keep = np.ones(len(candidates), dtype=bool)
    elif market == "fx":
        keep = ~(
            (dow == 5) | ((dow == 4) & (minutes >= 21 * 60)) | ((dow == 6) & (minutes < 22 * 60))
        )
    elif market == "equity":
        keep = dow < 5
        if bar < pd.Timedelta(days=1):
            keep &= (minutes >= 14 * 60 + 30) & (minutes < 21 * 60)
        days = candidates.normalize()
        holidays = pd.DatetimeIndex(days.unique()[::53])  # about five a year
        keep &= ~days.isin(holidays)
    else:
        raise ValueError(market)
    return candidates[keep][:n].rename("timestamp")


def make_market(
    market: str,
    timeframe: str,
    n: int,
    *,
    seed: int = 0,
    start: str = "2021-01-04",
    price: float = 100.0,
    zero_volume: int = 0,
) -> pd.DataFrame:
    """``n`` candles of ``market`` at ``timeframe`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    index = _calendar(market, timeframe, start, n)
    bar = timeframe_to_timedelta(timeframe)
    per_year = pd.Timedelta(days=365) / bar
    base_var = (0.6**2) / per_year  # about 60% a year, crypto-like; fine for every market
    omega, alpha, beta = base_var * 0.05, 0.08, 0.87
    shocks = rng.standard_t(5, n) / np.sqrt(5 / 3)
    if bar < pd.Timedelta(days=1):
        hour = (index.hour + index.minute / 60).to_numpy()
        season = 1.0 + 0.6 * np.cos(2 * np.pi * (hour - 15) / 24) ** 2
    else:
        season = np.ones(n)
    var = np.empty(n)
    ret = np.empty(n)
    v = base_var
    for t in range(n):
        var[t] = v
        ret[t] = np.sqrt(v) * season[t] * shocks[t]
        v = omega + alpha * (ret[t] / season[t]) ** 2 + beta * v
    close = price * np.exp(np.cumsum(ret))
    open_ = np.r_[price, close[:-1]] * np.exp(rng.normal(0, 0.1, n) * np.sqrt(var))
    wick = np.abs(rng.normal(0, 0.5, (2, n))) * np.sqrt(var) * season
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(6, 0.4, n) * (1 + 50 * np.abs(ret))
    if zero_volume:
        volume[rng.choice(np.arange(300, n - 50), zero_volume, replace=False)] = 0.0
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def with_momentum(candles: pd.DataFrame, phi: float) -> pd.DataFrame:
    """``candles`` with a planted, learnable edge: each bar's log return becomes its own
    plus ``phi`` times the previous (new) one, an AR(1) that lagged-return features can
    predict. Opens keep their gap to the previous close, highs and lows their distance
    from the bar's body, and volume is unchanged.

    For tests of the half that trades: on real data the models rightly find no edge and
    the strategy never trades, which leaves orders, fills and crash recovery untested.
    """
    close = candles["close"].to_numpy(dtype=np.float64)
    ret = np.diff(np.log(close))
    planted = np.empty_like(ret)
    previous = 0.0
    for t, r in enumerate(ret):
        previous = r + phi * previous
        planted[t] = previous
    new_close = close[0] * np.exp(np.r_[0.0, np.cumsum(planted)])
    gap = candles["open"].to_numpy() / np.r_[candles["open"].iloc[0], close[:-1]]
    new_open = np.r_[candles["open"].iloc[0], new_close[:-1]] * gap
    body_hi = np.maximum(candles["open"], candles["close"]).to_numpy()
    body_lo = np.minimum(candles["open"], candles["close"]).to_numpy()
    new_hi = np.maximum(new_open, new_close) * candles["high"].to_numpy() / body_hi
    new_lo = np.minimum(new_open, new_close) * candles["low"].to_numpy() / body_lo
    return candles.assign(open=new_open, high=new_hi, low=new_lo, close=new_close)


def planted_trend(
    n: int = 2000,
    *,
    seed: int = 0,
    drift: float = 0.35,
    regime_bars: float = 40.0,
    sigma: float = 0.01,
    start: str = "2012-01-02",
) -> pd.DataFrame:
    """Daily weekday candles with a planted, tradable edge: each bar's return drifts by
    ``drift`` sigmas in the direction of a hidden regime that flips about every
    ``regime_bars`` bars. Momentum features see the regime a few bars after it flips, and
    a position held through a regime earns far more than the default costs. The positive
    control: what the pipeline must find, trade and promote."""
    rng = np.random.default_rng(seed)
    index = pd.bdate_range(start, periods=n, tz="UTC", name="timestamp")
    flips = rng.random(n) < 1.0 / regime_bars
    regime = np.where(np.cumsum(flips) % 2 == 0, 1.0, -1.0)
    ret = regime * drift * sigma + sigma * rng.standard_normal(n)
    close = 100.0 * np.exp(np.cumsum(ret))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.1 * sigma, n))
    wick = np.abs(rng.normal(0, 0.5 * sigma, (2, n)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(10, 0.3, n)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def garch_only(n: int = 3000, *, seed: int = 0, start: str = "2021-01-04") -> pd.DataFrame:
    """Hourly 24/7 candles whose only predictable structure is a Gaussian GARCH(1,1) in
    close-to-close returns: wicks, opens and volume are drawn independently of the
    variance, and there is no intraday season. GARCH's own forecast is the best a model
    can do here, so a volatility model must add nothing to it (the control for the
    volatility agent's fallback to plain GARCH)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=n, freq="1h", tz="UTC", name="timestamp")
    base_var = 0.01**2
    omega, alpha, beta = base_var * 0.05, 0.08, 0.87
    shocks = rng.standard_normal(n)
    ret = np.empty(n)
    v = base_var
    for t in range(n):
        ret[t] = np.sqrt(v) * shocks[t]
        v = omega + alpha * ret[t] ** 2 + beta * v
    close = 100.0 * np.exp(np.cumsum(ret))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 1e-4, n))
    wick = np.abs(rng.normal(0, 0.002, (2, n)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(6, 0.4, n)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def drifted_candles(candles: pd.DataFrame, rows: int = 600) -> pd.DataFrame:
    """``candles`` plus ``rows`` new hours after the last one in a different market: four
    times the volatility, a steady up-trend and twenty times the volume."""
    tail = candles.iloc[-rows:]
    step = candles.index[-1] - candles.index[-2]
    index = candles.index[-1] + step * np.arange(1, rows + 1)
    returns = np.log(tail["Close"]).diff().fillna(0.0).to_numpy() * 4.0 + 0.002
    close = candles["Close"].iloc[-1] * np.exp(np.cumsum(returns))
    new = pd.DataFrame(index=index)
    for column in ("Open", "High", "Low"):
        new[column] = close * (1.0 + (tail[column] / tail["Close"] - 1.0).to_numpy() * 4.0)
    new["Close"] = close
    new["Volume"] = tail["Volume"].to_numpy() * 20.0
    new["High"] = new[["Open", "High", "Close"]].max(axis=1)
    new["Low"] = new[["Open", "Low", "Close"]].min(axis=1)
    return pd.concat([candles, new])
