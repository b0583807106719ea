"""The portfolio core against vectorbt on a multi-asset SMA crossover with shared cash.

vectorbt pins its own numpy and numba, so it runs in a virtual environment of its own
(``data/benchmarks/vectorbt_venv``, made with uv from the package index on the first run;
``--venv`` points at another). This script writes the candles and orders to a file, runs
vectorbt's ``Portfolio.from_orders(..., group_by=True, cash_sharing=True)`` there on the
same orders, and compares:

- the orders: a symbol enters 1/N of the book's equity at the next open when its fast SMA
  crosses above the slow one and leaves when it crosses back (no order in between), no
  fees or slippage (vectorbt sizes a target percent before fees, this engine after them,
  so trades are compared without fees), no stops, limits out of reach;
- the round trips (symbol, entry bar, exit bar, size, entry and exit price) and the final
  equity: identical or not;
- the speed of one run each (compiled first), median of ``--repeat``.

Last line: ``portfolio vs vectorbt: trades identical: yes|no; speed ratio (vectorbt time /
ours): R``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

VECTORBT_SIDE = r"""
import json, sys, time, statistics
import numpy as np, pandas as pd
import vectorbt as vbt

data = np.load(sys.argv[1])
index = pd.date_range("2020-01-01", periods=data["close"].shape[0], freq="1D")
frame = lambda a: pd.DataFrame(a, index=index)
close, open_, size = frame(data["close"]), frame(data["open"]), frame(data["size"])
repeat = int(sys.argv[3])

def run():
    return vbt.Portfolio.from_orders(
        close, size, size_type="targetpercent", price=open_, init_cash=float(data["cash"]),
        cash_sharing=True, group_by=True, fees=0.0, freq="1D",
    )

pf = run()  # compile
times = []
for _ in range(repeat):
    t0 = time.perf_counter()
    pf = run()
    times.append(time.perf_counter() - t0)
trades = pd.DataFrame(pf.trades.records)  # a record array or a frame, by version
out = {
    "seconds": statistics.median(times),
    "version": vbt.__version__,
    "final_value": float(pf.value().iloc[-1]),
    "trades": [
        [int(r["col"]), int(r["entry_idx"]), int(r["exit_idx"]), float(r["size"]),
         float(r["entry_price"]), float(r["exit_price"]), int(r["status"])]
        for _, r in trades.iterrows()
    ],
}
json.dump(out, open(sys.argv[2], "w"))
"""


def venv_python(venv: Path) -> Path:
    """The vectorbt environment's interpreter (made with uv on the first run)."""
    python = venv / "bin" / "python"
    if not python.exists():
        uv = Path(sys.executable).parent / "uv"
        subprocess.run([str(uv), "venv", "-q", "-p", sys.executable.replace("/.venv/", "/"),
                        str(venv)], check=False)  # fmt: skip
        if not python.exists():
            subprocess.run([str(uv), "venv", "-q", str(venv)], check=True)
        subprocess.run([str(uv), "pip", "install", "-q", "--python", str(python), "vectorbt"],
                       check=True)  # fmt: skip
    return python


def market(n_symbols: int, n_bars: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.012, (n_bars, n_symbols)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(rng.normal(0, 0.002, close.shape))
    high = np.maximum(open_, close) * 1.003
    low = np.minimum(open_, close) * 0.997
    return open_, high, low, close


def sma_orders(close: np.ndarray, fast: int, slow: int) -> np.ndarray:
    """Target fraction 1/N at a cross up, 0 at a cross down, NaN (no order) otherwise;
    decided at each close (our convention: filled at the next open)."""
    frame = pd.DataFrame(close)
    long = (frame.rolling(fast).mean() > frame.rolling(slow).mean()).astype(float).to_numpy()
    n = close.shape[1]
    changed = np.vstack([np.zeros((1, n), bool), long[1:] != long[:-1]])
    return np.where(changed, long / n, np.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--bars", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--venv", default=str(ROOT / "data" / "benchmarks" / "vectorbt_venv"))
    args = parser.parse_args()
    from ai_trade_bot.backtest.engine import EngineConfig
    from ai_trade_bot.portfolio.core import run_portfolio
    from ai_trade_bot.portfolio.limits import RiskLimits

    open_, high, low, close = market(args.symbols, args.bars)
    want = sma_orders(close, 10, 40)
    index = pd.date_range("2020-01-01", periods=args.bars, freq="1D", tz="UTC")
    symbols = [f"S{k:02d}" for k in range(args.symbols)]
    bars = {
        s: pd.DataFrame({"open": open_[:, k], "high": high[:, k], "low": low[:, k],
                         "close": close[:, k]}, index=index)
        for k, s in enumerate(symbols)
    }  # fmt: skip
    wants = pd.DataFrame(want, index=index, columns=symbols)
    loose = RiskLimits(
        max_risk_per_trade=10, max_position_size=10, max_total_exposure=10,
        max_correlated_exposure=10, max_single_sector=10, max_portfolio_risk=10,
        max_daily_loss=10, max_daily_trades=10**9, dd_reduce_start=1.0, dd_reduce_end=1.0,
    )  # fmt: skip
    engine = EngineConfig(initial_cash=1_000_000.0, rebalance_threshold=1.0)
    no_clusters = pd.DataFrame(np.tile(np.arange(args.symbols), (args.bars, 1)), index=index,
                               columns=symbols)  # fmt: skip

    def ours():
        return run_portfolio(bars, wants, engine, loose, clusters=no_clusters)

    result = ours()  # compile
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = ours()
        times.append(time.perf_counter() - t0)
    our_s = statistics.median(times)

    python = venv_python(Path(args.venv))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "market.npz"
        # vectorbt fills an order at the bar it is placed on: our decision at close t is
        # its order at bar t + 1, at that bar's open
        size = np.vstack([np.full((1, args.symbols), np.nan), want[:-1]])
        np.savez(data, close=close, open=open_, size=size, cash=engine.initial_cash)
        side = Path(tmp) / "run_vectorbt_side.py"  # (not vectorbt.py: it would shadow it)
        side.write_text(VECTORBT_SIDE)
        out = Path(tmp) / "out.json"
        subprocess.run([str(python), str(side), str(data), str(out), str(args.repeat)],
                       check=True)  # fmt: skip
        theirs = json.loads(out.read_text())
    trades = result.trades
    mine = sorted(
        (symbols.index(r.symbol), int(r.entry_bar), int(r.exit_bar), float(r.units),
         float(r.entry_price), float(r.exit_price))
        for r in trades.itertuples()
    )  # fmt: skip
    other = sorted(tuple(t[:6]) for t in theirs["trades"])
    same_shape = [m[:3] for m in mine] == [o[:3] for o in other]
    close_numbers = same_shape and all(
        np.allclose(m[3:], o[3:], rtol=1e-9, atol=1e-9) for m, o in zip(mine, other, strict=True)
    )
    final = float(result.equity.iloc[-1])
    print(f"{args.symbols} symbols x {args.bars} bars, SMA 10/40 long at 1/N of shared cash; "
          f"vectorbt {theirs['version']}")  # fmt: skip
    print(f"round trips: ours {len(mine)}, vectorbt {len(other)}; same entries and exits: "
          f"{same_shape}; same sizes and prices (rtol 1e-9): {close_numbers}")  # fmt: skip
    print(f"final equity: ours {final:,.4f}, vectorbt {theirs['final_value']:,.4f}")
    print(f"median of {args.repeat}: ours {our_s:.3f} s, vectorbt {theirs['seconds']:.3f} s")
    identical = close_numbers and np.isclose(final, theirs["final_value"], rtol=1e-9)
    print(
        f"portfolio vs vectorbt: trades identical: {'yes' if identical else 'no'}; speed ratio "
        f"(vectorbt time / ours): {theirs['seconds'] / our_s:.2f}"
    )


if __name__ == "__main__":
    main()
