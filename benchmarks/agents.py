"""Agent benchmark: trend_lstm training throughput and warm batch-1 inference latency.

Prints the LSTM's training samples/s (CPU, and GPU when CUDA is present), p50/p99 of one
prediction (one new candle, with the agent's minimum history as context) for every agent,
and as its last line ``max agent p99 ms: N``. Data: the bundled S&P 500 daily features.
The sentiment agent uses a tiny randomly initialised BERT built here (no FinBERT is
downloaded); its per-bar cost is the aggregation of pre-scored headlines.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from ai_trade_bot.agents import AGENTS, make_agent  # noqa: E402
from ai_trade_bot.agents.base import BAR_COLUMNS  # noqa: E402
from ai_trade_bot.data.sources import load_bundled  # noqa: E402
from ai_trade_bot.features.build import (  # noqa: E402
    FeatureConfig,
    LabelConfig,
    build_features,
    labels_for,
)

QUICK = {"max_epochs": 3, "patience": 3, "progress_bar": False}
PARAMS = {
    "trend_lstm": {"window": 64, "hidden": 32, **QUICK},
    "trend_transformer": {"window": 64, "d_model": 32, "heads": 4, "layers": 2, **QUICK},
    "volatility": {"horizon": 5, "burn_in": 100, **QUICK},
    "pattern": {"window": 32, "channels": 16, **QUICK},
    "regime": {"n_iter": 50, **QUICK},
    "gbm": {"n_estimators": 200},
}


def model_input():
    ohlcv, _, tf = load_bundled("sp500")
    feats = build_features(ohlcv, timeframe=tf, config=FeatureConfig())
    X = feats.join(ohlcv.set_axis(list(BAR_COLUMNS), axis=1))
    y = labels_for(ohlcv, LabelConfig(horizon=5))
    keep = X.notna().all(axis=1) & y.notna().all(axis=1)
    return X[keep], y[keep]


def lstm_throughput(X, y, device: str, epochs: int = 3) -> float:
    params = {**PARAMS["trend_lstm"], "max_epochs": epochs, "patience": epochs}
    agent = make_agent("trend_lstm", **params)
    if device == "cpu":
        orig = torch.cuda.is_available
        torch.cuda.is_available = lambda: False  # force the CPU path for the CPU figure
    try:
        start = time.perf_counter()
        agent.fit(X, y, val_size=300, gap=10)
        seconds = time.perf_counter() - start
    finally:
        if device == "cpu":
            torch.cuda.is_available = orig
    n_train = len(X) - 300 - 10 - (agent.window - 1)
    return n_train * agent.epochs_trained_ / seconds if agent.epochs_trained_ else float("nan")


def latency(agent, X, repeats: int) -> tuple[float, float]:
    context = X.iloc[-agent.min_history :]
    for _ in range(20):
        agent.predict(context)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        agent.predict(context)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    X, y = model_input()
    print(f"data: {len(X)} rows x {X.shape[1]} columns; torch threads {torch.get_num_threads()}")
    print(f"trend_lstm training throughput (cpu): {lstm_throughput(X, y, 'cpu'):,.0f} samples/s")
    if torch.cuda.is_available():
        print(
            f"trend_lstm training throughput (gpu, bf16-mixed): "
            f"{lstm_throughput(X, y, 'gpu'):,.0f} samples/s"
        )
    else:
        print("trend_lstm training throughput (gpu): no CUDA device here")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(AGENTS):
            if name == "sentiment":
                from tests.agents.conftest import make_headlines, make_tiny_bert

                params = {
                    "model_path": str(make_tiny_bert(Path(tmp) / "bert")),
                    "headlines_path": str(make_headlines(X.index, Path(tmp) / "h.csv")),
                    "lookback": "3D",
                }
            else:
                params = PARAMS[name]
            agent = make_agent(name, **params).fit(
                X.iloc[:2000], y.iloc[:2000], val_size=300, gap=10
            )
            p50, p99 = latency(agent, X, args.repeats)
            worst = max(worst, p99)
            print(
                f"{name:18s} batch-1 latency p50 {p50:7.3f} ms  p99 {p99:7.3f} ms "
                f"(history {agent.min_history})"
            )
    print(f"max agent p99 ms: {worst:.3f}")


if __name__ == "__main__":
    main()
