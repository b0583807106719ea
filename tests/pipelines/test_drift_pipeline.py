"""Drift: Evidently flags a shifted copy and not an unshifted one; the performance rules
fire on constructed cases only; the summaries carry the documented keys."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.errors import ConfigError
from ai_trade_bot.monitoring.drift import DriftConfig, RuleConfig, drift_report, retrain_decision
from ai_trade_bot.pipelines.drift import create_pipeline
from ai_trade_bot.pipelines.drift.nodes import detect_drift
from tests.pipelines.conftest import run_pipeline

SUMMARY_KEYS = {
    "method",
    "reference",
    "current",
    "n_columns",
    "drift_share",
    "feature_drift_share",
    "prediction_drift_share",
    "drifted_columns",
    "scores",
    "dataset_drift",
}


def _reference(tiny_run) -> pd.DataFrame:
    bundle = tiny_run["deploy_bundle"]
    features = tiny_run["features"][bundle.feature_columns].dropna()
    return features.loc[: bundle.training["end"]]


def test_a_shifted_copy_drifts_and_an_unshifted_sample_does_not(tiny_run) -> None:
    reference = _reference(tiny_run)
    config = DriftConfig()
    rng = np.random.default_rng(0)
    same = reference.iloc[rng.choice(len(reference), 500, replace=False)].sort_index()
    html, summary = drift_report(reference, same, config)
    assert set(summary) == SUMMARY_KEYS
    assert not summary["dataset_drift"] and summary["feature_drift_share"] < 0.1
    shifted = same + same.std() * 2.0  # every feature moved by two standard deviations
    _, moved = drift_report(reference, shifted, config)
    assert moved["dataset_drift"] and moved["feature_drift_share"] > 0.9
    assert moved["method"]["numerical"] == "ks"
    assert html.lstrip().lower().startswith("<html") or "<html" in html[:500].lower()


def test_the_drift_pipeline_on_the_default_data_writes_report_summary_and_decision(
    tiny_run,
) -> None:
    params = tiny_run["params"]
    out = run_pipeline(
        create_pipeline(),
        {
            "deploy_bundle": tiny_run["deploy_bundle"],
            "features": tiny_run["features"],
            "ohlcv_clean": tiny_run["ohlcv_clean"],
            "evaluation": tiny_run["evaluation"],
            "labels": tiny_run["labels"],
            "params:drift": params["drift"],
        },
    )
    summary = out["drift_summary"]
    assert set(summary) >= SUMMARY_KEYS
    assert summary["current"]["rows"] == params["drift"]["current_rows"]
    assert any(c.startswith("pred:meta.") for c in summary["scores"])  # prediction drift
    decision = out["retrain_required"]
    assert set(decision) == {"retrain", "reasons", "performance", "drift", "at"}
    assert decision["performance"]["source"] == "evaluate test span"
    assert decision["retrain"] == bool(decision["reasons"])
    assert "<html" in out["drift_report"][:2000].lower()
    assert set(out["drift_mlflow_metrics"]) == {
        "drift.feature_share",
        "drift.prediction_share",
        "drift.retrain_required",
    }


@pytest.mark.parametrize(
    "performance,drift_share,expected",
    [
        ({"accuracy": 0.6, "max_drawdown": 0.05, "sharpe": 1.0}, 0.0, set()),
        ({"accuracy": 0.45, "max_drawdown": 0.05, "sharpe": 1.0}, 0.0, {"accuracy"}),
        ({"accuracy": 0.6, "max_drawdown": 0.2, "sharpe": 1.0}, 0.0, {"drawdown"}),
        ({"accuracy": 0.6, "max_drawdown": 0.05, "sharpe": 0.2}, 0.0, {"sharpe"}),
        ({"accuracy": 0.6, "max_drawdown": 0.05, "sharpe": 1.0}, 0.5, {"data_drift"}),
    ],
)
def test_each_rule_fires_on_its_case_and_stays_silent_otherwise(
    performance, drift_share, expected
) -> None:
    drift = {
        "feature_drift_share": drift_share,
        "prediction_drift_share": 0.0,
        "drifted_columns": ["x"] if drift_share else [],
        "current": {},
        "reference": {},
    }
    decision = retrain_decision(drift, performance, DriftConfig(), RuleConfig())
    assert {r["rule"] for r in decision["reasons"]} == expected
    assert decision["retrain"] == bool(expected)
    for reason in decision["reasons"]:
        assert {"value", "threshold"} <= set(reason)


def test_drift_config_errors_name_the_key(tiny_run) -> None:
    with pytest.raises(ConfigError, match=r"'drift': unknown key\(s\) \['curent_rows'\]"):
        detect_drift(
            tiny_run["deploy_bundle"],
            tiny_run["features"],
            tiny_run["ohlcv_clean"],
            {"curent_rows": 10},
        )
    with pytest.raises(ConfigError, match="current_source must be 'ingested' or 'runner'"):
        detect_drift(
            tiny_run["deploy_bundle"],
            tiny_run["features"],
            tiny_run["ohlcv_clean"],
            {"current_source": "kafka"},
        )
