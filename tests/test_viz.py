"""`kedro viz build` writes a static Kedro-Viz site with every pipeline (the README's
picture, docs/pipeline.png, comes from it through scripts/pipeline_picture.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.project_copy import ROOT, clone, run

PIPELINES = {"ingestion", "features", "train", "evaluate", "deploy", "drift", "tune", "universe"}


@pytest.mark.slow
def test_kedro_viz_build_draws_every_pipeline(tmp_path: Path) -> None:
    project = clone(tmp_path / "ai_trade_bot")
    run(project, str(Path(sys.executable).parent / "kedro"), "viz", "build")
    main = json.loads((project / "build" / "api" / "main").read_text())
    assert {p["id"] for p in main["pipelines"]} == PIPELINES | {"__default__"}
    names = {n["name"] for n in main["nodes"] if n["type"] == "task"}
    assert {"validate_candles", "compute_features", "deploy_bundle", "detect_drift"} <= names
    assert (project / "build" / "index.html").exists()
    assert (ROOT / "docs" / "pipeline.png").stat().st_size > 50_000
