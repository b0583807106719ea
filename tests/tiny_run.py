"""A tiny bundle built by the real pipelines (bundled EURUSD hours with a planted momentum
edge, tiny agents), so that the strategy trades and the live tests see orders and fills."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ai_trade_bot.data.sources import load_bundled
from ai_trade_bot.pipelines import evaluate, features, ingestion, train
from ai_trade_bot.pipelines.deploy import create_pipeline as deploy_pipeline
from tests.pipelines.test_default_config import default_parameters, run_default, tiny
from tests.synthetic import with_momentum

# a longer held-out span, so that replaying it is more than 1,000 candles
TINY_RUN = {"train": {"walk_forward": {"test_fraction": 0.25}}}
MOMENTUM = 0.3  # the planted AR(1) coefficient of hourly log returns


def build_tiny_run(directory: Path) -> dict[str, Any]:
    candles, _, _ = load_bundled("eurusd")
    csv = directory / "eurusd.csv"
    with_momentum(candles, MOMENTUM).to_csv(csv)
    source = {"ingestion": {"source": "file", "path": str(csv), "symbol": "EURUSD"}}
    params = default_parameters(tiny(TINY_RUN | source))
    agents = params["train"]["agents"]
    pipeline = ingestion.create_pipeline() + features.create_pipeline()
    pipeline += train.create_pipeline(agents=agents) + evaluate.create_pipeline(agents=agents)
    pipeline += deploy_pipeline(agents=agents).only_nodes("package_bundle")
    out = run_default(pipeline, params)
    out["bundle_path"] = directory / "bundle"
    out["deploy_bundle"].save(out["bundle_path"])
    out["params"] = params
    return out
