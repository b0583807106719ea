"""Feature throughput: the default feature configuration (conf/base/parameters_features.yml,
as a user gets it) over 1,000,000 synthetic one-minute bars.

Prints the configuration resolved for minute bars (GARCH refits every 30 days = 43,200
bars, warm-started), a per-group timing breakdown, then the peak memory, then (last line)
``features rows/s: N``. The target is >= 100,000 rows/s under 4 GB. Run with ``make bench``
(or PYTHONPATH=src python benchmarks/...).
Numba kernels are compiled on a small warm-up frame first, so the figure is steady-state.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import yaml

from ai_trade_bot.features import build as build_module
from ai_trade_bot.features.build import build_features, feature_config

DEFAULTS = Path(__file__).resolve().parents[1] / "conf" / "base" / "parameters_features.yml"
CONFIG = feature_config(yaml.safe_load(DEFAULTS.read_text())["features"])


def synthetic_minutes(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2022-01-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    vol = 5e-4 * np.exp(np.cumsum(rng.normal(0, 0.01, n)) * 0.1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1, n) * vol))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 3e-4, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 3e-4, n))
    volume = rng.lognormal(3, 1, n)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=idx
    )


def _timed_groups() -> dict[str, float]:
    """Wrap the feature-group functions used by build_features to record their time."""
    spent: dict[str, float] = {}
    names = [
        "technical_columns",
        "statistical_columns",
        "garch_arrays",
        "microstructure_columns",
        "higher_timeframe_columns",
    ]
    for name in names:
        original = getattr(build_module, name)

        def wrapper(*args, _f=original, _n=name, **kwargs):
            start = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                spent[_n] = spent.get(_n, 0.0) + time.perf_counter() - start

        setattr(build_module, name, wrapper)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    resolved = CONFIG.resolve("1m")
    print(
        f"defaults for 1m bars: GARCH refit every {resolved.garch_refit_every} bars on "
        f"{resolved.garch_fit_window} returns (first at {resolved.garch_min_obs}), higher "
        f"timeframes {resolved.multi_timeframe}, VWAP reset {resolved.vwap_anchor}"
    )
    build_features(synthetic_minutes(20_000, seed=1), timeframe="1m", config=CONFIG)  # JIT
    frame = synthetic_minutes(args.rows)
    spent = _timed_groups()
    times = []
    for _ in range(args.repeats):
        spent.clear()
        start = time.perf_counter()
        features = build_features(frame, timeframe="1m", config=CONFIG)
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    print(
        f"rows: {len(frame):,}  features: {features.shape[1]}  complete rows: "
        f"{len(features.dropna()):,}"
    )
    print("last run by group: " + ", ".join(f"{k} {v:.2f}s" for k, v in spent.items()))
    print(f"build times (s): {', '.join(f'{t:.2f}' for t in times)}; median {median:.2f}")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak memory (max RSS): {peak_gb:.2f} GB")
    print(f"features rows/s: {len(frame) / median:,.0f}")


if __name__ == "__main__":
    main()
