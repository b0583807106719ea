"""Fan-out benchmark: the universe train stage, sequential against Dask workers.

Uses the model input the universe pipeline wrote (run ``make run-universe`` first; the
bundled basket by default) and the conf/base train settings. Runs the train stage once
sequentially and once on a Dask ``LocalCluster`` of ``--workers`` processes (one thread
each), checks the out-of-fold predictions are byte-identical, and prints the wall times.
Last line: ``fanout speed-up (N Dask workers vs sequential): R``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from kedro.config import OmegaConfigLoader  # noqa: E402

from ai_trade_bot.settings import CONFIG_LOADER_ARGS  # noqa: E402
from ai_trade_bot.training.fanout import ExecutorConfig  # noqa: E402
from ai_trade_bot.training.folds import WalkForwardConfig  # noqa: E402
from ai_trade_bot.training.pooled import train_universe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--input", default=str(ROOT / "data/05_model_input/universe"))
    args = parser.parse_args()
    from distributed import LocalCluster

    params = OmegaConfigLoader(conf_source=str(ROOT / "conf"), **CONFIG_LOADER_ARGS)["parameters"]
    X = pd.read_parquet(Path(args.input) / "model_input.parquet").set_index(["timestamp", "symbol"])
    y = pd.read_parquet(Path(args.input) / "labels.parquet").set_index(["timestamp", "symbol"])
    agents = {
        name: dict(params["agents"][name].get("params") or {})
        for name in params["train"]["universe_agents"]
    }
    wf = WalkForwardConfig(**params["train"]["walk_forward"])
    common = dict(pooling=params["train"]["pooling"], walk_forward=wf, seed=42)
    print(
        f"{len(X)} rows, {X.index.get_level_values('symbol').nunique()} symbols, "
        f"agents {list(agents)}"
    )
    t0 = time.perf_counter()
    seq = train_universe(X, y, agents, executor=ExecutorConfig(None, 1), **common)
    seq_s = time.perf_counter() - t0
    cluster = LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    try:
        t0 = time.perf_counter()
        dask = train_universe(
            X, y, agents, executor=ExecutorConfig(cluster.scheduler_address), **common
        )
        dask_s = time.perf_counter() - t0
    finally:
        cluster.close()
    cols = ["down", "flat", "up", "confidence"]
    same = seq.oof[cols].to_numpy().tobytes() == dask.oof[cols].to_numpy().tobytes()
    print(f"tasks: {seq.summary['executor']['tasks']}")
    print(
        f"sequential: {seq_s:.2f} s; dask {args.workers} workers: {dask_s:.2f} s "
        f"({len(dask.pids)} worker processes did work)"
    )
    print(f"out-of-fold predictions byte-identical: {same}")
    if not same:
        sys.exit(1)
    print(f"fanout speed-up ({args.workers} Dask workers vs sequential): {seq_s / dask_s:.2f}")


if __name__ == "__main__":
    main()
