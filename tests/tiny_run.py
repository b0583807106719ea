"""A tiny bundle built by the real pipelines (bundled EURUSD hours, tiny agents)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ai_trade_bot.pipelines import evaluate, features, ingestion, train
from ai_trade_bot.pipelines.deploy import create_pipeline as deploy_pipeline
from tests.pipelines.test_default_config import default_parameters, run_default, tiny

# a longer held-out span, so that replaying it is more than 1,000 candles
TINY_RUN = {"ingestion": {"bundled": "eurusd"}, "train": {"walk_forward": {"test_fraction": 0.25}}}


def build_tiny_run(directory: Path) -> dict[str, Any]:
    params = default_parameters(tiny(TINY_RUN))
    agents = params["train"]["agents"]
    pipeline = ingestion.create_pipeline() + features.create_pipeline()
    pipeline += train.create_pipeline(agents=agents) + evaluate.create_pipeline(agents=agents)
    pipeline += deploy_pipeline(agents=agents).only_nodes("package_bundle")
    out = run_default(pipeline, params)
    out["bundle_path"] = directory / "bundle"
    out["deploy_bundle"].save(out["bundle_path"])
    out["params"] = params
    return out
