"""The default configuration (conf/base), with tiny agents, on a user's own candles.

Each case writes candles to a CSV, as a user would, and runs the registered pipelines in
memory with the parameters exactly as Kedro resolves them from conf/base (soft-merged
with runtime overrides that only shrink the agents).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.pipeline import Pipeline

from ai_trade_bot.pipelines import evaluate, features, ingestion, train
from ai_trade_bot.settings import CONFIG_LOADER_ARGS
from tests.pipelines.conftest import run_pipeline
from tests.synthetic import make_market

ROOT = Path(__file__).resolve().parents[2]
FAST = {"max_epochs": 1, "batch_size": 256, "patience": 1, "progress_bar": False}
TINY_AGENTS = {
    "trend_lstm": {"window": 16, "hidden": 8, **FAST},
    "trend_transformer": {"window": 16, "d_model": 8, "heads": 2, "layers": 1, **FAST},
    "volatility": {"hidden": 8, **FAST},
    "pattern": {"window": 16, "channels": 4, **FAST},
    "regime": {"n_iter": 10, "hidden": 8, **FAST},
    "gbm": {"n_estimators": 30},
}


def default_parameters(runtime: dict[str, Any]) -> dict[str, Any]:
    """conf/base parameters (never a developer's conf/local) merged as Kedro merges them."""
    args = {k: v for k, v in CONFIG_LOADER_ARGS.items() if k != "default_run_env"}
    loader = OmegaConfigLoader(
        conf_source=str(ROOT / "conf"), env="base", runtime_params=runtime, **args
    )
    return loader["parameters"]


def _lookup(params: dict[str, Any], dotted: str) -> Any:
    value: Any = params
    for key in dotted.split("."):
        value = value[key]
    return value


def run_default(pipeline: Pipeline, params: dict[str, Any], **data: Any) -> dict[str, Any]:
    """Run ``pipeline`` with every ``params:`` input taken from ``params``."""
    inputs = dict(data)
    for name in pipeline.inputs():
        if name.startswith("params:"):
            inputs[name] = _lookup(params, name[len("params:") :])
        elif name.endswith(".tuned_params") or name == "tune_summaries":
            inputs.setdefault(name, {})
    return run_pipeline(pipeline, inputs)


def tiny(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    runtime = {"agents": {name: {"params": p} for name, p in TINY_AGENTS.items()}}
    return runtime | (extra or {})


@pytest.mark.slow
@pytest.mark.parametrize(
    "market,timeframe,n_bars",
    [
        ("crypto", "1m", 7200),  # five days of 24/7 minutes
        ("crypto", "5m", 6048),  # three weeks of 24/7 five-minute candles
        ("fx", "1h", 2600),  # five months of FX hours, Sunday to Friday
        ("equity", "1d", 1500),  # six years of weekdays with holidays and zero-volume days
    ],
)
def test_default_config_ingests_builds_features_and_trains_on_a_users_csv(
    tmp_path: Path, market: str, timeframe: str, n_bars: int
) -> None:
    candles = make_market(market, timeframe, n_bars, seed=4, zero_volume=2)
    path = tmp_path / f"{market}_{timeframe}.csv"
    candles.to_csv(path)  # the date index is written under an empty header
    params = default_parameters(tiny({"ingestion": {"source": "file", "path": str(path)}}))
    assert params["ingestion"]["validation"]["max_rejected_fraction"] == 0.05  # soft merge
    agents = params["train"]["agents"]
    pipeline = ingestion.create_pipeline() + features.create_pipeline()
    pipeline += train.create_pipeline(agents=agents)
    out = run_default(pipeline, params)

    summary = out["data_quality_summary"]
    assert summary["timeframe"] == timeframe and summary["rows_kept"] == n_bars
    assert out["ohlcv_clean"].index[0] == candles.index[0]  # real dates, not row numbers
    assert summary["gaps"]["count"] == 0  # nights, weekends and holidays are not gaps
    feats = out["features"]
    complete = feats.notna().all(axis=1)
    first = int(np.argmax(complete.to_numpy()))
    # two zero-volume bars blank no row after the warm-up
    assert complete.iloc[first:].all(), feats.columns[feats.iloc[first:].isna().any()].tolist()
    plan = out["walk_forward_plan"]
    assert len(plan["folds"]) == params["train"]["walk_forward"]["n_folds"]
    oof = out["oof_predictions"]
    assert {f"{a}.up" for a in ("trend_lstm", "pattern", "gbm")} <= set(oof.columns)
    assert oof.notna().all().all()
    for name, agent in out["train_summary"].items():
        if agent["baseline"]["baseline"]:
            assert np.isfinite(agent["baseline"]["value"]), name


@pytest.mark.slow
def test_whole_default_pipeline_on_bundled_eurusd_hours() -> None:
    params = default_parameters(tiny({"ingestion": {"bundled": "eurusd"}}))
    agents = params["train"]["agents"]
    pipeline = ingestion.create_pipeline() + features.create_pipeline()
    pipeline += train.create_pipeline(agents=agents) + evaluate.create_pipeline(agents=agents)
    out = run_default(pipeline, params)

    assert out["feature_manifest"]["resolved"] == {
        "multi_timeframe": ["4h", "1d"],
        "vwap_anchor": "W",
    }
    evaluation = out["evaluation"]
    span = evaluation["test_span"]
    clean = out["ohlcv_clean"]
    # every clean candle of the test span is backtested, with the data's own calendar
    assert span["bars"] == len(clean.loc[span["start"] :])
    assert 5000 < span["bars_per_year"] < 6500  # FX hours: 24 x 5 days x 52 weeks
    curves = out["equity_curves"]
    assert len(curves) == span["bars"] and curves.notna().all().all()
    reasons = evaluation["decision_reasons"]["meta_agent"]
    assert sum(reasons.values()) == span["bars"]
    selection = out["meta_selection"]
    assert selection["method"] == "prior" or selection["method"] in selection["eligible"]
    for method in selection["eligible"]:
        assert selection["validation_log_loss"][method] < selection["prior_log_loss"]
    html = out["evaluation_report"]
    assert "Why the strategies traded, or did not" in html
    assert "Agents against their trivial baselines" in html and "Research software" in html
    assert pd.Timestamp(span["start"]) > pd.Timestamp(selection["validation_end"])
