"""The execution core over N symbols with shared cash.

- An oracle: a slow plain-Python account of the documented rules (fills at the next open
  with each symbol's costs, stops and targets inside the bar, each symbol's own clamp, the
  book's drawdown, daily loss and trade count, then the cross-symbol limits), written from
  the rules, not from the kernel, agrees bar for bar with the kernel on random books.
- Parity: a book of one symbol is its single-symbol backtest; a book of many, when no
  portfolio limit binds, makes each symbol's trades of its single-symbol backtest.
- Each limit binds in a scripted scenario and its reason is recorded per symbol.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.backtest.engine import EngineConfig, run_backtest
from ai_trade_bot.portfolio.core import portfolio_config, run_portfolio
from ai_trade_bot.portfolio.limits import RiskLimits
from tests.conftest import make_ohlcv
from tests.portfolio.test_limits import reference as allocate_reference

LOOSE = RiskLimits(
    max_risk_per_trade=10,
    max_position_size=10,
    max_total_exposure=10,
    max_correlated_exposure=10,
    max_single_sector=10,
    max_portfolio_risk=10,
    max_daily_loss=1.0,
    max_daily_trades=1_000_000,
    dd_reduce_start=0.99,
    dd_reduce_end=1.0,
)


def _sgn(x: float) -> float:
    return 0.0 if x == 0 or math.isnan(x) else math.copysign(1.0, x)


def reference_book(bars, want, confidence, atr, fee, slip, clusters, engine, limits):
    """The book's rules with plain Python: returns (equity per bar, units per bar, trades).

    Decisions at the close of bar i-1 are ordered at bar i's open. Days are UTC days; the
    clamp counts an order in the day of the bar it fills on (no gaps in the times here)."""
    symbols = list(want.columns)
    n = len(symbols)
    times = want.index
    o, h, lo, c = (
        np.column_stack([bars[s][k].to_numpy() for s in symbols])
        for k in ("open", "high", "low", "close")
    )
    day = times.asi8 // 86_400_000_000_000
    sectors = limits.sector_ids(symbols)
    cash = engine.initial_cash
    pos = [dict(units=0.0, entry=0.0, bar=-1, fees=0.0, realized=0.0, stop=math.nan,
                take=math.nan, blocked=0.0, target=0.0, forced=False) for _ in symbols]  # fmt: skip
    last = c[0].copy()
    equity = engine.initial_cash
    peak, day_start, today, trades_today, halted = equity, equity, day[0], 0, False
    cooloff_until = -1
    eq_out, units_out, trades = [equity], [np.zeros(n)], []

    def new_day(d):
        nonlocal day_start, today, trades_today, halted
        if d != today:
            day_start, today, trades_today, halted = equity, d, 0, False

    def close_out(s, i, px, f, reason):
        p = pos[s]
        fee_paid = abs(p["units"]) * px * f
        pnl = p["units"] * (px - p["entry"]) + p["realized"] - fee_paid - p["fees"]
        trades.append((symbols[s], p["bar"], i, _sgn(p["units"]), abs(p["units"]), p["entry"],
                       px, pnl, reason))  # fmt: skip
        p["units"] = 0.0
        return fee_paid

    for i in range(1, len(times)):
        # ---- the clamp, at the close of bar i-1 ----
        new_day(day[i])
        if i == cooloff_until:
            peak = equity
        dd = 1.0 - equity / peak
        cooling, tripped = i < cooloff_until, False
        if not cooling and dd >= limits.dd_reduce_end:
            tripped = True
            cooloff_until = i + engine.dd_cooloff_bars
        order = sorted(range(n), key=lambda s: (-(0.0 if math.isnan(confidence.iat[i - 1, s])
                                                  else confidence.iat[i - 1, s]), s))  # fmt: skip
        clamped = [0.0] * n
        entries = 0
        for s in order:
            p = pos[s]
            w = want.iat[i - 1, s]
            hold = math.isnan(w)
            p["forced"] = False
            if hold:
                w = p["target"] if p["units"] != 0 else 0.0
            else:
                if p["blocked"] != 0 and _sgn(w) == p["blocked"]:
                    w = 0.0
                elif _sgn(w) != p["blocked"]:
                    p["blocked"] = 0.0
                if abs(w) > limits.max_position_size:
                    w = math.copysign(limits.max_position_size, w)
            if cooling or tripped or halted:
                p["forced"] = w != 0
                w = 0.0
            elif dd > limits.dd_reduce_start and not hold:
                w *= (limits.dd_reduce_end - dd) / (limits.dd_reduce_end - limits.dd_reduce_start)
            if _sgn(w) != 0 and _sgn(w) != _sgn(p["units"]):
                if trades_today + entries >= limits.max_daily_trades:
                    w = 0.0
                else:
                    entries += 1
            clamped[s] = w
        risk = []
        for s in range(n):
            p, px = pos[s], last[s]
            if p["units"] != 0 and not math.isnan(p["stop"]):
                risk.append(abs(px - p["stop"]) / px)
            elif engine.stop == "percent":
                risk.append(engine.stop_value)
            elif engine.stop == "atr" and atr.iat[i - 1, s] > 0:
                risk.append(engine.stop_value * atr.iat[i - 1, s] / px)
            else:
                risk.append(math.nan)
        allowed, _ = allocate_reference(
            clamped, confidence.iloc[i - 1].to_numpy(), np.array(risk), sectors,
            clusters.iloc[i - 1].to_numpy(), limits,
        )  # fmt: skip
        for s in range(n):
            if allowed[s] == 0 and clamped[s] != 0 and pos[s]["units"] != 0:
                pos[s]["forced"] = True
        # ---- the fills at bar i's open, then stops and targets inside the bar ----
        new_day(day[i])
        eq_open = cash + sum(pos[s]["units"] * (last[s] if math.isnan(o[i, s]) else o[i, s])
                             for s in range(n))  # fmt: skip
        for s in range(n):
            if math.isnan(o[i, s]):
                continue
            p, w, f, sl = pos[s], allowed[s], fee.iat[i, s], slip.iat[i, s]
            side = _sgn(p["units"])
            if side != 0 and _sgn(w) != side:
                px = o[i, s] * (1 - side * sl)
                units = p["units"]
                paid = close_out(s, i, px, f, "risk" if p["forced"] else "signal")
                cash += units * px - paid
                side = 0.0
            if _sgn(w) != 0:
                px = o[i, s] * (1 + _sgn(w) * sl)
                desired = w * eq_open / (px * (1 + f))
                if side == 0:
                    cash -= desired * px + abs(desired) * px * f
                    p.update(units=desired, entry=px, bar=i, fees=abs(desired) * px * f,
                             realized=0.0)  # fmt: skip
                    trades_today += 1
                    ref = atr.iat[i - 1, s] if engine.stop == "atr" else px
                    p["stop"] = (
                        px - _sgn(w) * engine.stop_value * ref
                        if engine.stop != "none"
                        else math.nan
                    )
                    ref = atr.iat[i - 1, s] if engine.take == "atr" else px
                    p["take"] = (
                        px + _sgn(w) * engine.take_value * ref
                        if engine.take != "none"
                        else math.nan
                    )
                elif abs(w - p["target"]) > engine.rebalance_threshold:
                    delta = desired - p["units"]
                    dpx = o[i, s] * (1 + _sgn(delta) * sl)
                    cash -= delta * dpx + abs(delta) * dpx * f
                    if abs(desired) > abs(p["units"]):
                        p["entry"] = (p["entry"] * p["units"] + dpx * delta) / desired
                    else:
                        p["realized"] += -delta * (dpx - p["entry"])
                    p["fees"] += abs(delta) * dpx * f
                    p["units"] = desired
            p["target"] = w
            if p["units"] != 0:
                side = _sgn(p["units"])
                stop_hit = not math.isnan(p["stop"]) and (
                    lo[i, s] <= p["stop"] if side > 0 else h[i, s] >= p["stop"]
                )
                take_hit = not math.isnan(p["take"]) and (
                    h[i, s] >= p["take"] if side > 0 else lo[i, s] <= p["take"]
                )
                if stop_hit or take_hit:
                    level = p["stop"] if stop_hit else p["take"]
                    worse = min if (side > 0) == stop_hit else max  # a gap fills at the open
                    px = worse(o[i, s], level) * (1 - side * sl)
                    units = p["units"]
                    paid = close_out(s, i, px, f, "stop" if stop_hit else "target")
                    cash += units * px - paid
                    p["blocked"] = side
                elif engine.trailing and not math.isnan(p["stop"]):
                    if engine.stop == "atr":
                        up = down = engine.stop_value * atr.iat[i, s]
                    else:
                        up, down = engine.stop_value * h[i, s], engine.stop_value * lo[i, s]
                    p["stop"] = (
                        max(p["stop"], h[i, s] - up)
                        if side > 0
                        else min(p["stop"], lo[i, s] + down)
                    )
            last[s] = c[i, s]
        equity = cash + sum(pos[s]["units"] * last[s] for s in range(n))
        peak = max(peak, equity)
        if equity < day_start * (1 - limits.max_daily_loss):
            halted = True
        eq_out.append(equity)
        units_out.append(np.array([p["units"] for p in pos]))
    for s in range(n):
        p = pos[s]
        if p["units"] != 0:
            pnl = p["units"] * (last[s] - p["entry"]) + p["realized"] - p["fees"]
            trades.append((symbols[s], p["bar"], len(times) - 1, _sgn(p["units"]),
                           abs(p["units"]), p["entry"], last[s], pnl, "end"))  # fmt: skip
    return np.array(eq_out), np.array(units_out), trades


def _book(rng, n_symbols, n_bars, *, gaps=False, freq="1D"):
    symbols = [f"S{k}" for k in range(n_symbols)]
    common = rng.normal(0, 0.012, n_bars)
    bars = {}
    for k, s in enumerate(symbols):
        frame = make_ohlcv(n_bars, seed=int(rng.integers(1 << 30)), freq=freq)
        # some symbols follow a common factor, so correlation clusters form and break up
        if k % 2 == 0:
            close = 100 * np.exp(np.cumsum(common + rng.normal(0, 0.004, n_bars)))
            scale = close / frame["close"].to_numpy()
            frame[["open", "high", "low", "close"]] = frame[["open", "high", "low", "close"]].mul(
                scale, axis=0
            )
        if gaps and k == n_symbols - 1:
            frame.iloc[rng.choice(np.arange(5, n_bars), 6, replace=False), :4] = np.nan
        bars[s] = frame
    index = bars[symbols[0]].index
    raw = rng.choice([-0.3, -0.12, -0.05, 0.0, 0.05, 0.12, 0.3, np.nan], size=(n_bars, n_symbols))
    # decisions persist a few bars, as a strategy's do
    keep = rng.random((n_bars, n_symbols)) < 0.6
    for t in range(1, n_bars):
        raw[t] = np.where(keep[t], raw[t - 1], raw[t])
    want = pd.DataFrame(raw, index=index, columns=symbols)
    confidence = pd.DataFrame(
        rng.choice([0.4, 0.55, 0.7, 0.9, np.nan], size=(n_bars, n_symbols)),
        index=index, columns=symbols,
    )  # fmt: skip
    return bars, want, confidence


def _costs(rng, want):
    shape = want.shape
    fee = pd.DataFrame(rng.uniform(0, 0.002, shape), index=want.index, columns=want.columns)
    slip = pd.DataFrame(rng.uniform(0, 0.001, shape), index=want.index, columns=want.columns)
    return fee, slip


def _case(seed: int):
    """A random book whose limits are tight enough that each binds in some case."""
    from ai_trade_bot.features.indicators import atr as atr_of
    from ai_trade_bot.portfolio.limits import rolling_clusters

    rng = np.random.default_rng(seed)
    n_symbols = int(rng.integers(2, 6))
    freq = "6h" if seed % 4 < 2 else "1D"  # intraday: the daily loss and trade count bind
    bars, want, confidence = _book(rng, n_symbols, 160, gaps=seed % 2 == 1, freq=freq)
    engine = EngineConfig(
        stop=["none", "percent", "atr"][seed % 3],
        stop_value=[0.0, 0.03, 1.5][seed % 3],
        take=["none", "percent"][seed % 2],
        take_value=0.06,
        trailing=seed % 4 == 2,
        dd_cooloff_bars=5,
        rebalance_threshold=0.033,  # off the grid of the wants: no ties at the threshold
    )
    bold = seed % 2 == 0  # large books that meet the daily loss and the breaker
    dd_start = float(rng.uniform(0.01, 0.04))
    limits = RiskLimits(
        max_risk_per_trade=float(rng.uniform(0.002, 0.01)) * (5 if bold else 1),
        max_position_size=float(rng.uniform(0.08, 0.25)) * (2 if bold else 1),
        max_total_exposure=float(rng.uniform(0.3, 0.6)) * (2 if bold else 1),
        max_correlated_exposure=float(rng.uniform(0.15, 0.35)) * (2 if bold else 1),
        max_single_sector=float(rng.uniform(0.15, 0.35)) * (2 if bold else 1),
        max_portfolio_risk=float(rng.uniform(0.005, 0.02)) * (5 if bold else 1),
        max_daily_loss=float(rng.uniform(0.005, 0.02)),
        max_daily_trades=int(rng.integers(1, 4)),
        dd_reduce_start=dd_start,
        dd_reduce_end=dd_start + (0.0 if bold else 0.02),
        correlation_window=20,
        sectors={s: ("a" if k < 2 else "b") for k, s in enumerate(want.columns)},
    )
    atr = pd.DataFrame(
        {s: atr_of(*(bars[s][k].to_numpy() for k in ("high", "low", "close")), 14) for s in bars},
        index=want.index,
    )
    fee, slip = _costs(rng, want)
    closes = pd.DataFrame({s: bars[s]["close"] for s in bars})
    clusters = rolling_clusters(closes.pct_change(fill_method=None), 20, 0.7)
    kernel = run_portfolio(
        bars, want, engine, limits, confidence=confidence, atr=atr, fee=fee, slip=slip,
        clusters=clusters,
    )  # fmt: skip
    return kernel, (bars, want, confidence, atr, fee, slip, clusters, engine, limits)


ORACLE_SEEDS = range(8)


@pytest.mark.parametrize("seed", ORACLE_SEEDS)
def test_portfolio_oracle_agrees_bar_for_bar_with_the_reference(seed) -> None:
    kernel, (bars, want, confidence, atr, fee, slip, clusters, engine, limits) = _case(seed)
    equity, units, trades = reference_book(
        bars, want, confidence, atr, fee, slip, clusters, portfolio_config(engine, limits), limits
    )
    np.testing.assert_allclose(kernel.equity.to_numpy(), equity, rtol=1e-10)
    np.testing.assert_allclose(kernel.units.to_numpy(), units, rtol=1e-10, atol=1e-9)
    ref = pd.DataFrame(
        trades,
        columns=["symbol", "entry_bar", "exit_bar", "side", "units", "entry_price",
                 "exit_price", "pnl", "reason"],
    ).sort_values(["exit_bar", "symbol"], kind="stable").reset_index(drop=True)  # fmt: skip
    got = kernel.trades[ref.columns]
    assert got[["symbol", "entry_bar", "exit_bar", "side", "reason"]].equals(
        ref[["symbol", "entry_bar", "exit_bar", "side", "reason"]]
    )
    np.testing.assert_allclose(got[["units", "entry_price", "exit_price", "pnl"]].to_numpy(),
                               ref[["units", "entry_price", "exit_price", "pnl"]].to_numpy(),
                               rtol=1e-9, atol=1e-7)  # fmt: skip


def test_portfolio_oracle_cases_make_every_limit_bind() -> None:
    """Over the oracle's cases every limit of the book binds (else the agreement above
    would not cover it)."""
    seen: set[str] = set()
    for seed in ORACLE_SEEDS:
        seen |= set(_case(seed)[0].limit_counts())
    assert {
        "max_position", "max_risk_per_trade", "max_single_sector", "max_correlated_exposure",
        "max_total_exposure", "max_portfolio_risk", "drawdown_breaker", "drawdown_scaling",
        "daily_loss", "trades_per_day", "blocked_side",
    } <= seen, seen  # fmt: skip


def test_portfolio_parity_one_symbol_is_the_single_symbol_backtest() -> None:
    rng = np.random.default_rng(7)
    bars, want, _ = _book(rng, 1, 400, freq="6h")
    engine = EngineConfig(stop="percent", stop_value=0.02, take="percent", take_value=0.04,
                          trailing=True)  # fmt: skip
    # the book's own limits on, the cross-symbol ones out of reach
    limits = dataclasses.replace(
        LOOSE, max_position_size=0.25, max_daily_loss=0.004, max_daily_trades=3,
        dd_reduce_start=0.02, dd_reduce_end=0.05,
    )  # fmt: skip
    book = run_portfolio(bars, want, engine, limits, fee=0.001, slip=0.0005)
    single = run_backtest(bars["S0"], want["S0"], portfolio_config(engine, limits), fee=0.001,
                          slip=0.0005)  # fmt: skip
    np.testing.assert_allclose(book.equity.to_numpy(), single.equity.to_numpy(), rtol=1e-12)
    cols = list(single.trades.columns)
    pd.testing.assert_frame_equal(book.trades[cols], single.trades[cols], rtol=1e-12)
    assert {"drawdown_scaling", "daily_loss"} <= set(book.limit_counts())  # limits did act


def test_portfolio_parity_each_symbol_trades_as_its_single_backtest_when_no_limit_binds() -> None:
    """With shared cash each symbol is sized on the book's equity, so its units differ
    from a single run on its own cash (and so would the average entry of a resized
    position: the wants here only enter, exit and flip); the trades' times, sides,
    prices and reasons are equal."""
    rng = np.random.default_rng(11)
    bars, want, _ = _book(rng, 4, 300)
    want = np.sign(want) * 0.1
    engine = EngineConfig(stop="percent", stop_value=0.03, take="percent", take_value=0.05)
    book = run_portfolio(bars, want, engine, LOOSE, fee=0.001, slip=0.0002)
    assert not set(book.limit_counts()) - {"blocked_side"}  # no portfolio limit bound
    cols = ["entry_bar", "exit_bar", "side", "entry_price", "exit_price", "reason"]
    for s in want.columns:
        single = run_backtest(bars[s], want[s], portfolio_config(engine, LOOSE), fee=0.001,
                              slip=0.0002)  # fmt: skip
        mine = book.trades[book.trades.symbol == s].reset_index(drop=True)
        assert len(mine) > 20
        pd.testing.assert_frame_equal(mine[cols], single.trades[cols], rtol=1e-12)


def test_portfolio_parity_bar_by_bar_core_is_the_backtest() -> None:
    """The live runner's PortfolioCore, called one bar at a time (clamp at the close,
    fill at the next candle), is the backtest's loop."""
    from ai_trade_bot.backtest.engine import DAY_NS
    from ai_trade_bot.backtest.state import S_EQUITY
    from ai_trade_bot.portfolio.core import PortfolioCore

    kernel, (bars, want, confidence, atr, fee, slip, clusters, engine, limits) = _case(5)
    symbols = list(want.columns)
    core = PortfolioCore(engine, limits, symbols)
    days = want.index.asi8 // DAY_NS
    account, states = core.start(days[0])
    candles = np.stack([bars[s][["open", "high", "low", "close"]].to_numpy() for s in symbols], 1)
    last_close = candles[0, :, 3].copy()
    equity, fills = [account[S_EQUITY]], []
    for i in range(1, len(want)):
        allowed, _ = core.clamp(
            account, states, i, want.iloc[i - 1].to_numpy(), confidence.iloc[i - 1].to_numpy(),
            last_close=last_close, atr=atr.iloc[i - 1].to_numpy(),
            clusters=clusters.iloc[i - 1].to_numpy(), day=days[i],
        )  # fmt: skip
        got, _ = core.fill(
            account, states, i, candles[i], allowed, atr_prev=atr.iloc[i - 1].to_numpy(),
            atr_now=atr.iloc[i].to_numpy(), day=days[i], fee=fee.iloc[i].to_numpy(),
            slip=slip.iloc[i].to_numpy(), last_close=last_close,
        )  # fmt: skip
        fills += got
        equity.append(account[S_EQUITY])
    np.testing.assert_array_equal(np.array(equity), kernel.equity.to_numpy())
    closes = [f for f in fills if f["kind"] in ("close", "stop", "target", "risk")]
    assert len(closes) == (kernel.trades["reason"] != "end").sum()
    assert {f["symbol"] for f in fills} == set(kernel.trades["symbol"])
