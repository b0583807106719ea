"""The live runner's decision latency, replaying >= 2,000 candles with every default agent.

A bundle with every default agent is trained once on the bundled EURUSD hours (the
default configuration; one epoch per torch agent, since latency does not depend on how
long they trained) and kept in ``data/benchmarks/live_bundle``. Then the runner's command
(``python -m ai_trade_bot live``) replays the last 2,000+ candles as fast as possible,
paper trading into a fresh state file:

- cold start: process start to the first decision committed to SQLite;
- per candle: from the candle's arrival to its persisted decision (after the commit),
  p50 and p99 over the warm candles, and the median time of each stage.

Last line: ``live decision p99 ms: N``.

``--symbols N`` (N >= 2) measures the universe book instead (``live --universe``): N
symbols of planted-trend daily candles, a LightGBM pooled over them through the universe
trainer (kept in ``data/benchmarks/book_N``), replayed for ``--candles`` steps (default
200); per step, from the step's candles to the committed step, for every symbol at once.
Last line: ``live book step p99 ms (N symbols): X``.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ai_trade_bot.commands import live_argv

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "data" / "benchmarks"


def build_bundle(path: Path) -> None:
    """Train every default agent (one epoch) through the real pipelines; save the bundle."""
    sys.path.insert(0, str(ROOT))
    from ai_trade_bot.pipelines import evaluate, features, ingestion, train
    from ai_trade_bot.pipelines.deploy import create_pipeline as deploy_pipeline
    from tests.pipelines.test_default_config import default_parameters, run_default

    one_epoch = {"max_epochs": 1, "progress_bar": False}
    params = default_parameters(
        {
            "ingestion": {"bundled": "eurusd"},
            "agents": {
                name: {"params": one_epoch}
                for name in ("trend_lstm", "trend_transformer", "volatility", "pattern", "regime")
            },
        }
    )
    agents = params["train"]["agents"]
    pipeline = ingestion.create_pipeline() + features.create_pipeline()
    pipeline += train.create_pipeline(agents=agents) + evaluate.create_pipeline(agents=agents)
    pipeline += deploy_pipeline(agents=agents).only_nodes("package_bundle")
    out = run_default(pipeline, params)
    out["deploy_bundle"].save(path)
    out["ohlcv_clean"].to_csv(path.parent / "eurusd.csv")


def first_decision(state: Path) -> bool:
    if not state.exists():
        return False
    try:
        db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1)
        found = db.execute("SELECT 1 FROM decisions LIMIT 1").fetchone() is not None
        db.close()
    except sqlite3.Error:
        return False
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=2000)
    parser.add_argument("--rebuild", action="store_true", help="retrain the bundle")
    parser.add_argument("--symbols", type=int, default=1, help="N >= 2: the universe book")
    args = parser.parse_args()
    if args.symbols > 1:
        book(args.symbols, args.candles if args.candles != 2000 else 200, args.rebuild)
        return
    bundle = CACHE / "live_bundle"
    if args.rebuild or not (bundle / "bundle.json").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        build_bundle(bundle)
        print(f"trained the benchmark bundle in {time.perf_counter() - started:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.db"
        command = live_argv(
            replay=CACHE / "eurusd.csv", start=-args.candles, model=bundle, state=state
        )
        started = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        while not first_decision(state) and process.poll() is None:
            time.sleep(0.005)
        cold = time.perf_counter() - started
        output, _ = process.communicate()
        if process.returncode != 0:
            sys.exit(output[-3000:])
    summary = output.strip().splitlines()[-1]
    found = re.search(r"(\d+) candles; decision latency p50 ([\d.]+) ms, p99 ([\d.]+) ms", summary)
    if not found:
        sys.exit(f"unexpected runner output: {summary}")
    n, p50, p99 = int(found[1]), float(found[2]), float(found[3])
    stages = re.search(r"\(median ms by stage: ([^)]*)\)", summary)
    print(f"replayed {n} candles with every default agent (paper, SQLite WAL)")
    print(f"cold start (process start to first decision): {cold:.1f} s")
    print(f"per candle, arrival to persisted decision: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    if stages:
        print(f"median by stage (ms): {stages[1]}")
    print(f"live decision p99 ms: {p99:.1f}")


def book(n: int, steps: int, rebuild: bool) -> None:
    """The universe book's step latency with ``n`` symbols (see the module docstring)."""
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from tests.live.book_fixture import save_planted

    folder = CACHE / f"book_{n}"
    bundle = folder / "bundle"
    if rebuild or not (bundle / "universe_bundle.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        save_planted(bundle, symbols=[f"S{k:02d}" for k in range(n)])
        print(f"trained the {n}-symbol benchmark bundle in {time.perf_counter() - started:.0f} s")
    candles = pd.read_parquet(folder / "candles.parquet")
    times = sorted(candles["timestamp"].unique())
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.db"
        command = live_argv(universe=True, replay=folder / "candles.parquet",
                            start=str(times[-steps]), model=bundle, state=state)  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(done.stdout[-2000:] + done.stderr[-3000:])
    summary = done.stdout.strip().splitlines()[-1]
    found = re.search(r"(\d+) steps of (\d+) symbols; step latency p50 ([\d.]+) ms, p99 "
                      r"([\d.]+) ms", summary)  # fmt: skip
    if not found:
        sys.exit(f"unexpected runner output: {summary}")
    p50, p99 = float(found[3]), float(found[4])
    print(f"replayed {found[1]} steps of {found[2]} symbols as one book (paper, SQLite WAL) in "
          f"{wall:.1f} s including start-up")  # fmt: skip
    print(f"per step, candles to committed step: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"live book step p99 ms ({n} symbols): {p99:.1f}")


if __name__ == "__main__":
    main()
