"""Our engine against backtesting.py, trade by trade, on about 5,000 bars: long and short,
percent and trailing stops, take-profit, fees and slippage.

backtesting.py is the reference (``backtesting`` 0.6, a test dependency). Its strategy below
is written from our conventions, not from our code: the target decided at bar t's close is
filled at bar t+1's open; a stop or target is a fraction of the fill price, checked inside
the bar with the stop first and a gap filled at the open; a trailing stop moves behind each
bar's extreme after the bar; after a stop or target, the same side is not re-entered until
the signal changes; all equity per entry in whole units.

Slippage: ours moves every fill against the trade; backtesting.py's ``spread`` moves only
the entry (exits fill at the raw price, and the entry's commission is charged on the
spread price). On long trades the two agree in cash when the commission is
``k = s + fee - s·fee`` per unit of notional and the spread ``2·s·fee / (1 + k)`` (solve
both legs' cash flows: ``1 - k = (1 - s)(1 - fee)``, ``(1 + spread)(1 + k) = (1 + s)(1 +
fee)``), so the slippage cases are long-only and compare the fills through that mapping;
no constant pair does it for shorts (their entry and exit legs disagree).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TQDM_DISABLE", "1")
backtesting = pytest.importorskip("backtesting")

from ai_trade_bot.backtest.engine import EngineConfig, run_backtest  # noqa: E402

N_BARS = 5_000
CASH = 1_000_000.0
FEE = 0.001
FULL = float(np.nextafter(1.0, 0.0))  # backtesting.py's default order size: all equity


def bars(n: int = N_BARS, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2015-01-01", periods=n, freq="1h")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.002, n))  # gaps at the open
    high = np.maximum(open_, close) * (1 + rng.exponential(0.003, n))
    low = np.minimum(open_, close) * (1 - rng.exponential(0.003, n))
    volume = rng.uniform(100, 1000, n)
    return pd.DataFrame(
        {"Open": open_, "High": high, "Low": low, "Close": close, "Volume": volume}, index=idx
    )


def regimes(n: int, sides: tuple[int, ...], seed: int = 3) -> np.ndarray:
    """A signed target per bar: runs of 3-29 bars on a side from ``sides``, with a flat bar
    or more between two different sides (so an entry never shares a bar with an exit at
    the open: the engines size a flip from different equities)."""
    rng = np.random.default_rng(seed)
    target = np.zeros(n)
    i, previous = 0, 0
    while i < n:
        side = int(rng.choice(sides))
        if side != 0 and previous != 0 and side != previous:
            side = 0
        length = int(rng.integers(3, 30))
        target[i : i + length] = side * FULL
        i += length
        previous = side
    target[:2] = 0.0  # backtesting.py first calls next() on the second bar
    target[-1] = 0.0
    return target


def spread_for(slip: float, fee: float) -> float:
    """backtesting.py's spread that, with commission ``slip + fee - slip*fee``, gives our
    long trades' cash flows (module docstring)."""
    return 2.0 * slip * fee / (1.0 + slip + fee - slip * fee)


def theirs(data, target, *, stop, take, trailing, slip, fee):
    """backtesting.py trading ``target`` under the conventions in the module docstring."""
    from backtesting import Backtest, Strategy

    opens = data["Open"].to_numpy()
    spread = spread_for(slip, fee)

    class Target(Strategy):
        def init(self):
            self.blocked = 0.0
            self.prev = 0.0  # the side our last order asked for
            self.closing = False
            self.seen_closed = 0

        def next(self):
            i = len(self.data) - 1
            # a trade that closed without our order was stopped or took profit
            if len(self.closed_trades) > self.seen_closed:
                last = self.closed_trades[-1]
                if not self.closing:
                    self.blocked = float(np.sign(last.size))
                self.seen_closed = len(self.closed_trades)
            self.closing = False
            if trailing and stop:
                for trade in self.trades:
                    h, lo = self.data.High[-1], self.data.Low[-1]
                    if trade.is_long:
                        trade.sl = max(trade.sl, h - stop * h)
                    else:
                        trade.sl = min(trade.sl, lo + stop * lo)
            if i + 1 >= len(opens):
                return
            want = target[i]
            side = float(np.sign(want))
            if self.blocked != 0.0 and side == self.blocked:
                side = 0.0
            elif side != self.blocked:
                self.blocked = 0.0
            held = float(np.sign(self.position.size))
            if held != 0.0 and side != held:
                self.position.close()
                self.closing = True
                held = 0.0
            if side != 0.0 and held == 0.0:
                px = opens[i + 1] * (1.0 + side * slip)  # our fill price
                sl = px * (1.0 - side * stop) if stop else None
                tp = px * (1.0 + side * take) if take else None
                (self.buy if side > 0 else self.sell)(size=FULL, sl=sl, tp=tp)

    def commission(size, price):
        return abs(size) * price * (slip + fee - slip * fee)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(
            data,
            Target,
            cash=CASH,
            commission=commission if slip else fee,
            spread=spread,
            finalize_trades=True,
        )
        return bt.run()


def ours(data, target, *, stop, take, trailing, slip, fee):
    config = EngineConfig(
        initial_cash=CASH,
        integer_units=True,
        dd_reduce_start=1.0,
        dd_reduce_end=1.0,
        stop="percent" if stop else "none",
        stop_value=stop,
        take="percent" if take else "none",
        take_value=take,
        trailing=trailing,
    )
    return run_backtest(data, target, config, fee=fee, slip=slip)


def assert_identical(mine, stats, slip: float) -> None:
    theirs_t = stats["_trades"].sort_values(["EntryBar", "ExitBar"]).reset_index(drop=True)
    ours_t = mine.trades
    assert len(ours_t) == len(theirs_t), (len(ours_t), len(theirs_t))
    np.testing.assert_array_equal(ours_t["entry_bar"], theirs_t["EntryBar"])
    np.testing.assert_array_equal(ours_t["exit_bar"], theirs_t["ExitBar"])
    np.testing.assert_array_equal(ours_t["side"] * ours_t["units"], theirs_t["Size"])
    side = np.sign(theirs_t["Size"].to_numpy())
    # their raw entry price carries the mapped spread, their exits none (module docstring)
    spread = spread_for(slip, FEE)
    entry = theirs_t["EntryPrice"].to_numpy() / (1 + side * spread) * (1 + side * slip)
    exit_ = theirs_t["ExitPrice"].to_numpy() * (1 - side * slip)
    np.testing.assert_allclose(ours_t["entry_price"], entry, rtol=1e-12, atol=0)
    np.testing.assert_allclose(ours_t["exit_price"], exit_, rtol=1e-12, atol=0)
    # each round trip's profit after costs, to a billionth of the starting cash
    np.testing.assert_allclose(ours_t["pnl"], theirs_t["PnL"], rtol=0, atol=1e-9 * CASH)
    final_ours, final_theirs = mine.equity.iloc[-1], float(stats["Equity Final [$]"])
    assert abs(final_ours - final_theirs) / final_theirs <= 1e-9, (final_ours, final_theirs)


CASES = {
    "long_short_percent_stop_take_profit": dict(
        sides=(1, 0, -1), stop=0.02, take=0.015, trailing=False, slip=0.0
    ),
    "long_short_trailing_stop": dict(
        sides=(1, 0, -1), stop=0.02, take=0.0, trailing=True, slip=0.0
    ),
    "long_short_trailing_stop_take_profit": dict(
        sides=(1, 0, -1), stop=0.03, take=0.02, trailing=True, slip=0.0
    ),
    "long_slippage_percent_stop_take_profit": dict(
        sides=(1, 0), stop=0.02, take=0.015, trailing=False, slip=0.0005
    ),
    "long_slippage_trailing_stop_take_profit": dict(
        sides=(1, 0), stop=0.03, take=0.02, trailing=True, slip=0.0005
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_identity_with_backtesting_py(case: str) -> None:
    spec = dict(CASES[case])
    data = bars()
    target = regimes(len(data), spec.pop("sides"))
    mine = ours(data, target, fee=FEE, **spec)
    stats = theirs(data, target, fee=FEE, **spec)
    reasons = mine.trades["reason"].value_counts()
    # the case exercises what it names: every exit kind it configures happens, often
    assert reasons.get("signal", 0) >= 10, reasons
    if spec["stop"]:
        assert reasons.get("stop", 0) >= 10, reasons
    if spec["take"]:
        assert reasons.get("target", 0) >= 10, reasons
    if "long_short" in case:
        assert (mine.trades["side"] < 0).sum() >= 20 and (mine.trades["side"] > 0).sum() >= 20
    assert_identical(mine, stats, spec["slip"])
