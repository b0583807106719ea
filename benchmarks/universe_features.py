"""Universe feature throughput: 50 symbols x 100,000 one-minute bars through the universe
pipeline's features node (each symbol's own features on its own bars, the cross-sectional
columns, the labels and the stacked model input), with the default feature configuration
(conf/base/parameters_features.yml, as a user gets it).

Symbols are synthetic random walks (benchmarks/features_throughput.py's generator, one
seed per symbol); a few bars per symbol are dropped so the calendar has holes. Prints the
time of the node and its parts, the peak memory, then (last line) ``universe features
rows/s: N``. The target is >= 100,000 rows/s under 8 GB. The symbols are built on loky
workers (``--workers``, default auto: the CPUs not busy) as the pipeline builds them; the
peak memory is given for the driver (which holds the stacked frame) and for the driver and
its workers together. ``make bench-universe-features``.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from features_throughput import synthetic_minutes  # noqa: E402

from ai_trade_bot.pipelines.universe.nodes import universe_features  # noqa: E402
from ai_trade_bot.universe.panel import align, to_long  # noqa: E402


class TreeMemory(threading.Thread):
    """The largest summed RSS of this process and its children (the loky workers)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self._stop_event = 0, threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self._stop_event.wait(0.1):
            total = me.memory_info().rss
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            self.peak = max(self.peak, total)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def candles(symbols: int, rows: int) -> pd.DataFrame:
    """Long candles of ``symbols`` synthetic symbols on one calendar with a few holes."""
    frames = {}
    rng = np.random.default_rng(0)
    for k in range(symbols):
        frame = synthetic_minutes(rows, seed=k + 1)
        frames[f"S{k:02d}"] = frame.drop(frame.index[rng.choice(rows, 20, replace=False)])
    return to_long(align(frames))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", default="auto", help="loky workers (default: auto)")
    args = parser.parse_args()
    params = yaml.safe_load((ROOT / "conf" / "base" / "parameters_features.yml").read_text())
    train = yaml.safe_load((ROOT / "conf" / "base" / "parameters_train.yml").read_text())["train"]
    workers = args.workers if args.workers == "auto" else int(args.workers)
    train["executor"] = {"address": None, "n_workers": workers}
    quality = {"timeframe": "1m"}
    warm = candles(3, 20_000)  # compiles the numba kernels first: the figure is steady-state
    universe_features(warm, quality, params["features"], params["labels"], train)
    long = candles(args.symbols, args.rows)
    print(f"{args.symbols} symbols x {args.rows:,} one-minute bars: {len(long):,} candles")
    sampler = TreeMemory()
    sampler.start()
    start = time.perf_counter()
    X, _y, manifest = universe_features(long, quality, params["features"], params["labels"], train)
    seconds = time.perf_counter() - start
    sampler.stop()
    print(
        f"model input: {len(X):,} complete rows x {X.shape[1]} columns "
        f"({X.memory_usage(deep=False).sum() / 1024**3:.2f} GB), "
        f"{len(manifest['cross_section_columns'])} cross-sectional columns"
    )
    print(f"features node: {seconds:.1f} s on {train['executor']}")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak memory (max RSS): {peak_gb:.2f} GB in the driver")
    print(
        f"peak memory of the driver and its workers together (sampled every 0.1 s): "
        f"{sampler.peak / 1024**3:.2f} GB"
    )
    print(f"universe features rows/s: {len(long) / seconds:,.0f}")


if __name__ == "__main__":
    main()
