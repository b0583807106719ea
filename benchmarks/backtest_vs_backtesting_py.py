"""Our engine against backtesting.py on the same SMA(10/30) crossover, long and flat.

Same bars (>= 100,000 synthetic hourly candles), same fee, fills at the next open, whole
units and all equity per entry (backtesting.py's defaults). Checks that the trades and
the final equity are identical (relative difference <= 1e-9), then times both: median of
>= 5 runs after a warm-up that covers numba's compile. Also times 100 parameter sets in
our engine (checked against 100 single runs) in alternation with one full run, and
prints the ratio of the medians. Every rule runs through the one per-bar ``step_bar``
(the live paper broker calls it too). Last line:
``speedup vs backtesting.py: N.Nx (identical: yes|no); sweep 100 sets: N.Nx one run``.
Exits with status 1 when the trades or the sweep differ (the figure is then meaningless);
tests/backtest/test_identity.py holds the identity with shorts, stops, targets and slippage.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numba
import numpy as np
import pandas as pd

# backtesting.py draws a tqdm progress bar per run: off, for clean output and fair timing
os.environ.setdefault("TQDM_DISABLE", "1")

from ai_trade_bot.backtest.engine import EngineConfig, run_backtest, sweep_crossovers
from ai_trade_bot.backtest.signals import crossover_positions, rolling_mean

FEE = 0.001
CASH = 1_000_000.0
FAST, SLOW = 10, 30
FULL_EQUITY = float(np.nextafter(1.0, 0.0))  # backtesting.py buy() default size


def synthetic_bars(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2010-01-01", periods=n, freq="1h")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.0005, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, n))
    return pd.DataFrame(
        {
            "Open": open_,
            "High": high,
            "Low": low,
            "Close": close,
            "Volume": rng.uniform(100, 1000, n),
        },
        index=idx,
    )


def sma(values, n: int) -> np.ndarray:
    """The one SMA both engines use (our numba running mean)."""
    return rolling_mean(np.asarray(values, dtype=np.float64), n)


def crossover_targets(close: np.ndarray, fast: int, slow: int, size: float) -> np.ndarray:
    """Long from a fast-over-slow cross to the next cross back (backtesting.lib rule)."""
    return crossover_positions(sma(close, fast), sma(close, slow), size)


def ours(data: pd.DataFrame, fast: int = FAST, slow: int = SLOW):
    target = crossover_targets(data["Close"].to_numpy(), fast, slow, FULL_EQUITY)
    config = EngineConfig(
        initial_cash=CASH, integer_units=True, dd_reduce_start=1.0, dd_reduce_end=1.0
    )
    return run_backtest(data, target, config, fee=FEE)


def theirs(data: pd.DataFrame):
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    class SmaCross(Strategy):
        def init(self):
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        def next(self):
            if crossover(self.fast, self.slow):
                self.buy()
            elif crossover(self.slow, self.fast):
                self.position.close()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(data, SmaCross, cash=CASH, commission=FEE, finalize_trades=True)
        return bt.run()


def compare(mine, stats) -> tuple[bool, float, int]:
    trades = stats["_trades"]
    equity_theirs = float(stats["Equity Final [$]"])
    equity_ours = float(mine.equity.iloc[-1])
    rel = abs(equity_ours - equity_theirs) / equity_theirs
    ours_t = mine.trades
    same = len(trades) == len(ours_t)
    if same:
        same = (
            np.array_equal(trades["EntryBar"].to_numpy(), ours_t["entry_bar"].to_numpy())
            and np.array_equal(trades["ExitBar"].to_numpy(), ours_t["exit_bar"].to_numpy())
            and np.array_equal(trades["Size"].to_numpy().astype(float), ours_t["units"].to_numpy())
            and np.allclose(trades["EntryPrice"], ours_t["entry_price"], rtol=1e-12)
            and np.allclose(trades["ExitPrice"], ours_t["exit_price"], rtol=1e-12)
        )
    return same and rel <= 1e-9, rel, len(trades)


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweep-rounds", type=int, default=15)
    args = parser.parse_args()
    data = synthetic_bars(args.bars)
    mine = ours(data)  # warm-up: numba compile
    stats = theirs(data)
    identical, rel, n_trades = compare(mine, stats)
    print(
        f"bars: {len(data):,}  trades: {n_trades}  final equity ours "
        f"{mine.equity.iloc[-1]:,.6f} vs backtesting.py {stats['Equity Final [$]']:,.6f} "
        f"(rel diff {rel:.2e})"
    )
    t_ours = timed(lambda: ours(data), args.repeats)
    t_theirs = timed(lambda: theirs(data), args.repeats)
    print(
        f"median of {args.repeats}: ours {t_ours * 1e3:.1f} ms, backtesting.py "
        f"{t_theirs * 1e3:.1f} ms"
    )

    config = EngineConfig(
        initial_cash=CASH, integer_units=True, dd_reduce_start=1.0, dd_reduce_end=1.0
    )
    grid = [(f, s) for f in range(5, 25, 2) for s in range(30, 130, 10)][:100]

    def many() -> np.ndarray:
        return sweep_crossovers(data, grid, config, size=FULL_EQUITY, fee=FEE)

    finals = many()  # also compiles the parallel kernel
    singles = np.array([ours(data, fast, slow).equity.iloc[-1] for fast, slow in grid])
    sweep_ok = np.array_equal(finals, singles)
    print(f"sweep equals 100 single runs exactly: {'yes' if sweep_ok else 'no'}")
    # One full run and the sweep, timed in alternation so that both see the same noise.
    t_one, t_many = [], []
    for _ in range(args.sweep_rounds):
        t_one.append(timed(lambda: ours(data), 1))
        t_many.append(timed(many, 1))
    one, hundred = float(np.median(t_one)), float(np.median(t_many))
    print(
        f"100 parameter sets: {hundred * 1e3:.1f} ms = {hundred / one:.1f}x one full run "
        f"({one * 1e3:.2f} ms; medians of {args.sweep_rounds} alternating rounds, "
        f"numba threads: {numba.get_num_threads()}); {hundred / t_ours:.1f}x the back-to-back "
        f"median above"
    )
    print(
        f"speedup vs backtesting.py: {t_theirs / t_ours:.1f}x "
        f"(identical: {'yes' if identical and sweep_ok else 'no'}); "
        f"sweep 100 sets: {hundred / one:.1f}x one run"
    )
    if not (identical and sweep_ok):
        sys.exit(1)


if __name__ == "__main__":
    main()
