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


def test_local_overrides_and_runtime_params_change_only_the_keys_they_name(tmp_path) -> None:
    import shutil

    from kedro.config import OmegaConfigLoader

    from ai_trade_bot.settings import CONFIG_LOADER_ARGS

    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf" / "base", conf / "base")
    (conf / "local").mkdir()
    (conf / "local" / "parameters_features.yml").write_text("features:\n  sma_lengths: [5, 10]\n")
    runtime = {"ingestion": {"source": "file", "path": "data/01_raw/my.csv"}}
    loader = OmegaConfigLoader(conf_source=str(conf), runtime_params=runtime, **CONFIG_LOADER_ARGS)
    params = loader["parameters"]
    assert params["features"]["sma_lengths"] == [5, 10]
    assert params["features"]["garch_min_obs"] == 500  # the rest of the block is kept
    assert params["ingestion"]["source"] == "file"
    assert params["ingestion"]["path"] == "data/01_raw/my.csv"
    assert params["ingestion"]["validation"]["max_rejected_fraction"] == 0.05
