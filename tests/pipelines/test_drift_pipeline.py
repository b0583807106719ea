"""Drift: Evidently flags a shifted copy and not an unshifted one; with the default
settings, the bundled hours with nothing changed require no retrain and a real change
does; the performance rules fire on constructed cases only, judged against the prior and
the evaluate span; the runner's state feeds drift and the rules; the summaries carry the
documented keys."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.errors import ConfigError
from ai_trade_bot.monitoring.drift import DriftConfig, RuleConfig, drift_report, retrain_decision
from ai_trade_bot.pipelines import features, ingestion
from ai_trade_bot.pipelines.drift import create_pipeline
from ai_trade_bot.pipelines.drift.nodes import detect_drift
from tests.pipelines.conftest import run_pipeline
from tests.pipelines.test_default_config import default_parameters, run_default
from tests.synthetic import drifted_candles

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
    "feature_share_threshold",
    "evidently_feature_drift_share",
    "evidently_drifted_columns",
    "null",
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
    assert set(decision) == {"retrain", "reasons", "performance", "checks", "drift", "at"}
    assert decision["performance"]["source"] == "evaluate test span"
    assert decision["retrain"] == bool(decision["reasons"])
    assert "<html" in out["drift_report"][:2000].lower()
    assert set(out["drift_mlflow_metrics"]) == {
        "drift.feature_share",
        "drift.prediction_share",
        "drift.retrain_required",
    }


HEALTHY = {"accuracy": 0.40, "prior_accuracy": 0.38, "sharpe": 0.9, "max_drawdown": 0.05,
           "rows": 500, "periods_per_year": 252.0}  # fmt: skip
BASELINE = HEALTHY | {"sharpe": 1.2, "max_drawdown": 0.06}


@pytest.mark.parametrize(
    "change,drift_share,expected",
    [
        ({}, 0.0, set()),
        # a model no better than its prior is healthy: the prior is the bar, not 0.5
        ({"accuracy": 0.37}, 0.0, set()),
        ({"accuracy": 0.33}, 0.0, {"accuracy"}),
        ({"max_drawdown": 0.2}, 0.0, {"drawdown"}),
        # 500 daily rows: one standard error of the Sharpe is 0.71, so 1.2 - 2 x 0.71
        ({"sharpe": -0.1}, 0.0, set()),
        ({"sharpe": -0.3}, 0.0, {"sharpe"}),
        ({}, 0.5, {"data_drift"}),
    ],
)
def test_each_rule_fires_on_its_case_and_stays_silent_otherwise(change, drift_share, expected):
    drift = {
        "feature_drift_share": drift_share,
        "feature_share_threshold": 0.3,
        "prediction_drift_share": 0.0,
        "drifted_columns": ["x"] if drift_share else [],
        "current": {},
        "reference": {},
    }
    decision = retrain_decision(
        drift, HEALTHY | change, DriftConfig(), RuleConfig(), baseline=BASELINE
    )
    assert {r["rule"] for r in decision["reasons"]} == expected
    assert decision["retrain"] == bool(expected)
    for reason in decision["reasons"]:
        assert {"value", "threshold"} <= set(reason)
    # the evaluate span judged against itself passes every rule
    assert not retrain_decision(
        drift | {"feature_drift_share": 0.0}, BASELINE, DriftConfig(), RuleConfig()
    )["retrain"]


def test_the_old_absolute_rules_are_refused_with_what_to_write(tiny_run) -> None:
    with pytest.raises(
        ConfigError, match="'min_accuracy' is no longer read; write accuracy_margin"
    ):
        detect_drift(
            tiny_run["deploy_bundle"],
            tiny_run["features"],
            tiny_run["ohlcv_clean"],
            {"rules": {"min_accuracy": 0.5}},
        )


# -- the defaults on the bundled hours ------------------------------------------------------
def _drift_on(tiny_run, candles: pd.DataFrame, tmp_path, drift: dict | None = None) -> dict:
    """Ingest and featurise ``candles`` with the default configuration, then the drift
    pipeline with the default drift settings (``drift`` over them) against the tiny
    bundle (trained on the same hours' dates)."""
    path = tmp_path / "candles.csv"
    candles.to_csv(path)
    params = default_parameters({"ingestion": {"source": "file", "path": str(path),
                                               "symbol": "EURUSD"}})  # fmt: skip
    built = run_default(ingestion.create_pipeline() + features.create_pipeline(), params)
    return run_default(
        create_pipeline(),
        params | {"drift": params["drift"] | (drift or {})},
        deploy_bundle=tiny_run["deploy_bundle"],
        features=built["features"],
        ohlcv_clean=built["ohlcv_clean"],
        evaluation=tiny_run["evaluation"],
        labels=tiny_run["labels"],
    )


@pytest.mark.slow
def test_drift_no_change_on_the_bundled_hours_with_the_defaults_requires_no_retrain(
    tiny_run, tmp_path
) -> None:
    """The bundled EURUSD hours as they ship: the last 500 candles, after the bundle's
    training window, against that window. Plain KS at 5% flags most rolling features
    (what Evidently's report shows); the calibrated decision does not cry wolf."""
    from backtesting.test import EURUSD

    out = _drift_on(tiny_run, EURUSD, tmp_path)
    summary, decision = out["drift_summary"], out["retrain_required"]
    end = pd.Timestamp(tiny_run["deploy_bundle"].training["end"])
    assert pd.Timestamp(summary["current"]["start"]) > end  # data the model never saw
    assert summary["evidently_feature_drift_share"] > 0.5  # the uncalibrated test cries wolf
    assert not summary["dataset_drift"], summary
    assert summary["feature_drift_share"] <= summary["feature_share_threshold"]
    assert not decision["retrain"], decision["reasons"]
    assert {c["rule"] for c in decision["checks"]} == {"accuracy", "sharpe", "drawdown"}


@pytest.mark.slow
def test_drift_a_real_change_with_the_defaults_requires_a_retrain(tiny_run, tmp_path) -> None:
    """The last 500 hours from another market: four times the volatility, a trend and
    twenty times the volume."""
    from backtesting.test import EURUSD

    out = _drift_on(tiny_run, drifted_candles(EURUSD, 500), tmp_path)
    summary, decision = out["drift_summary"], out["retrain_required"]
    assert summary["dataset_drift"]
    assert summary["feature_drift_share"] > summary["feature_share_threshold"] >= 0.3
    assert "data_drift" in {r["rule"] for r in decision["reasons"]}
    assert decision["retrain"]


def test_drift_and_the_rules_read_the_runners_state(tiny_run, tmp_path) -> None:
    """``current_source: runner``: the current rows and the rules' figures come from what
    the runner recorded (a paper replay of the tiny bundle's held-out span)."""
    from tests.live.conftest import replay_runner

    state = tmp_path / "state.db"
    runner, store = replay_runner(tiny_run, state)
    runner.start()
    runner.run(max_candles=260)
    store.close()
    drift = tiny_run["params"]["drift"] | {
        "current_source": "runner",
        "state_path": str(state),
        "current_rows": 200,
        "rules": {"monitoring_rows": 200},
    }
    out = run_default(
        create_pipeline(),
        tiny_run["params"] | {"drift": drift},
        **{k: tiny_run[k] for k in ("deploy_bundle", "features", "ohlcv_clean", "evaluation",
                                    "labels")},
    )  # fmt: skip
    summary, decision = out["drift_summary"], out["retrain_required"]
    assert summary["source"] == "runner" and summary["current"]["rows"] == 200
    performance = decision["performance"]
    assert performance["source"].startswith(f"runner:{state}")
    assert performance["rows"] == 200 and performance["scored_rows"] >= 190
    assert 0.2 < performance["prior_accuracy"] < 0.6
    assert performance["baseline"]["source"] == "evaluate test span"
    assert {c["rule"] for c in decision["checks"]} == {"accuracy", "sharpe", "drawdown"}


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
