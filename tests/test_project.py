"""Project wiring: the pipelines users type are registered."""

from __future__ import annotations

from pathlib import Path

from kedro.framework.project import configure_project, pipelines
from kedro.framework.startup import bootstrap_project

ROOT = Path(__file__).resolve().parents[1]


def test_pipelines_are_registered() -> None:
    bootstrap_project(ROOT)
    configure_project("ai_trade_bot")
    assert {"ingestion", "features", "__default__"} <= set(pipelines)
    default_nodes = {n.name for n in pipelines["__default__"].nodes}
    assert {"load_ohlcv", "validate_candles", "compute_features", "compute_labels"} <= (
        default_nodes
    )
