"""Portfolio backtest benchmark: N symbols x M bars through the shared-cash book with every
limit on, against N separate single-symbol runs of the same targets.

Synthetic one-minute candles (half the symbols follow a common factor, so correlation
clusters form), persistent random targets with confidences, 0.1% fees and 0.05%
slippage, percent stops and targets, and the system's limits (``conf/base``'s ``risk``
values, one sector per five symbols). The correlation clusters are recomputed from past
returns every ``--every`` bars and timed on their own. Reports how often each limit bound.
Last line: ``portfolio backtest: X bars x symbols/s (ratio R against N single runs)``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ai_trade_bot.backtest.engine import EngineConfig, run_backtest  # noqa: E402
from ai_trade_bot.portfolio.core import portfolio_config, run_portfolio  # noqa: E402
from ai_trade_bot.portfolio.limits import RiskLimits, rolling_clusters  # noqa: E402


def synthetic(n_symbols: int, n_bars: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n_bars, freq="1min", tz="UTC")
    common = rng.normal(0, 0.0008, n_bars)
    bars = {}
    for k in range(n_symbols):
        own = rng.normal(0, 0.0008, n_bars)
        close = 100 * np.exp(np.cumsum(own + (common if k % 2 == 0 else 0)))
        open_ = np.r_[100.0, close[:-1]]
        wick = np.abs(rng.normal(0, 0.0004, n_bars))
        bars[f"S{k:02d}"] = pd.DataFrame(
            {
                "open": open_,
                "high": np.maximum(open_, close) * (1 + wick),
                "low": np.minimum(open_, close) * (1 - wick),
                "close": close,
            },
            index=index,
        )
    symbols = list(bars)
    raw = rng.choice([-0.15, -0.08, 0.0, 0.08, 0.15], size=(n_bars, n_symbols))
    keep = rng.random((n_bars, n_symbols)) < 0.97  # a decision lasts ~30 bars
    for t in range(1, n_bars):
        raw[t] = np.where(keep[t], raw[t - 1], raw[t])
    want = pd.DataFrame(raw, index=index, columns=symbols)
    confidence = pd.DataFrame(rng.uniform(0.34, 0.9, (n_bars, n_symbols)), index=index,
                              columns=symbols)  # fmt: skip
    return bars, want, confidence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=60, help="bars between cluster updates")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import yaml

    block = yaml.safe_load((ROOT / "conf/base/parameters_risk.yml").read_text())["risk"]
    symbols = [f"S{k:02d}" for k in range(args.symbols)]
    block["sectors"] = {s: f"sector_{k // 5}" for k, s in enumerate(symbols)}
    limits = RiskLimits(**block)
    engine = EngineConfig(stop="percent", stop_value=0.01, take="percent", take_value=0.02)
    bars, want, confidence = synthetic(args.symbols, args.bars)
    print(f"{args.symbols} symbols x {args.bars} bars, limits {limits.caps().tolist()}")

    t0 = time.perf_counter()
    closes = pd.DataFrame({s: bars[s]["close"] for s in symbols})
    clusters = rolling_clusters(
        closes.pct_change(fill_method=None), limits.correlation_window,
        limits.correlation_threshold, every=args.every,
    )  # fmt: skip
    cluster_s = time.perf_counter() - t0
    print(f"correlation clusters every {args.every} bars: {cluster_s:.2f} s")

    def book():
        return run_portfolio(bars, want, engine, limits, confidence=confidence, fee=0.001,
                             slip=0.0005, clusters=clusters)  # fmt: skip

    result = book()  # compile
    book_s = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = book()
        book_s.append(time.perf_counter() - t0)
    single_cfg = portfolio_config(engine, limits)
    run_backtest(bars[symbols[0]], want[symbols[0]], single_cfg, fee=0.001, slip=0.0005)
    single_s = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for s in symbols:
            run_backtest(bars[s], want[s], single_cfg, fee=0.001, slip=0.0005)
        single_s.append(time.perf_counter() - t0)
    book_med, single_med = statistics.median(book_s), statistics.median(single_s)
    print(f"limits bound (bar x symbol decisions): {result.limit_counts()}")
    print(f"trades {len(result.trades)}, final equity {result.equity.iloc[-1]:,.0f}, "
          f"max gross exposure {result.weights.abs().sum(axis=1).max():.3f}")  # fmt: skip
    print(f"portfolio book: median {book_med:.2f} s; {args.symbols} single runs: median "
          f"{single_med:.2f} s")  # fmt: skip
    rate = args.symbols * args.bars / book_med
    print(
        f"portfolio backtest: {rate:,.0f} bars x symbols/s (ratio {book_med / single_med:.2f} "
        f"against {args.symbols} single runs)"
    )


if __name__ == "__main__":
    main()
