"""Meta-agent, evaluate and placebo checks on small data, end to end in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from ai_trade_bot.features.build import FeatureConfig, LabelConfig, build_features, labels_for
from ai_trade_bot.pipelines.evaluate import create_pipeline as evaluate_pipeline
from ai_trade_bot.pipelines.train import create_pipeline as train_pipeline
from tests.agents.conftest import FAST
from tests.conftest import make_ohlcv
from tests.pipelines.conftest import run_pipeline
from tests.pipelines.test_train_pipeline import META_WALK_FORWARD

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
AGENTS = ("trend_lstm", "gbm", "volatility", "regime")
PARAMS = {
    "trend_lstm": {"window": 8, "hidden": 8, **FAST},
    "gbm": {"n_estimators": 30, "min_child_samples": 20, "early_stopping_rounds": 5},
    "volatility": {"horizon": 3, "burn_in": 20, "hidden": 8, **FAST},
    "regime": {"n_iter": 20, "hidden": 8, **FAST},
}
WALK_FORWARD = {
    "n_folds": 3,
    "min_train_fraction": 0.4,
    "val_fraction": 0.15,
    "purge": 3,
    "embargo": 2,
    "test_fraction": 0.25,
}
META = {
    "methods": ["confidence_vote", "majority_vote", "logistic"],
    "disagreement_penalty": 1.0,
    "walk_forward": META_WALK_FORWARD,
}
SMALL = FeatureConfig(
    garch_min_obs=200,
    garch_refit_every=200,
    garch_fit_window=500,
    multi_timeframe=("1w",),
    vwap_anchor="W",
)


def _evaluate_params() -> dict:
    params = yaml.safe_load((ROOT / "conf/base/parameters_evaluate.yml").read_text())["evaluate"]
    return params | {"bootstrap": 300}


def run_end_to_end(
    ohlcv: pd.DataFrame, timeframe: str, *, permute_labels: bool = False, seed: int = 0
) -> dict:
    features = build_features(ohlcv, timeframe=timeframe, config=SMALL)
    labels = labels_for(ohlcv, LabelConfig(horizon=3))
    if permute_labels:
        rng = np.random.default_rng(seed)
        valid = labels.dropna().index
        labels.loc[valid, "direction"] = rng.permutation(labels.loc[valid, "direction"].to_numpy())
    inputs = {
        "features": features,
        "labels": labels,
        "ohlcv_clean": ohlcv,
        "params:train.walk_forward": WALK_FORWARD,
        "params:meta": META,
    }
    for name in AGENTS:
        inputs[f"params:agents.{name}"] = {"name": name, "params": PARAMS[name]}
        inputs[f"{name}.tuned_params"] = {}
    trained = run_pipeline(train_pipeline(agents=AGENTS), inputs)
    from ai_trade_bot.pipelines.train.nodes import build_model_input

    X, y, _ = build_model_input(features, labels, ohlcv, WALK_FORWARD)
    evaluated = run_pipeline(
        evaluate_pipeline(agents=AGENTS),
        {
            "model_input": X,
            "features": features,
            "labels": labels,
            "ohlcv_clean": ohlcv,
            "tune_summaries": {},
            "params:train.walk_forward": WALK_FORWARD,
            "params:evaluate": _evaluate_params(),
            **{k: v for k, v in trained.items() if k.endswith(".model")},
            "meta_oof_predictions": trained["meta_oof_predictions"],
            "meta_agents": trained["meta_agents"],
            "meta_ablation": trained["meta_ablation"],
            "train_summary": trained["train_summary"],
        },
    )
    return trained | evaluated | {"model_labels": y, "labels": labels, "ohlcv_clean": ohlcv}


@pytest.fixture(scope="module")
def random_walk_run() -> dict:
    return run_end_to_end(make_ohlcv(2500, seed=21, freq="1D", start="2010-01-01"), "1d")


def test_meta_agent_and_report_end_to_end(random_walk_run) -> None:
    out = random_walk_run
    ablation = out["meta_ablation"]
    assert {"meta:logistic", "agent:gbm", "agent:trend_lstm", "meta:plain_average"} <= set(ablation)
    meta_oof = out["meta_oof_predictions"]
    cols = {
        "logistic.down",
        "logistic.confidence",
        "logistic.disagreement",
        "logistic.lower",
        "logistic.upper",
        "logistic.regime",
        "logistic.magnitude",
    }
    assert cols <= set(meta_oof.columns)
    np.testing.assert_allclose(
        meta_oof[["logistic.down", "logistic.flat", "logistic.up"]].sum(axis=1), 1.0, atol=1e-9
    )
    assert (meta_oof["logistic.lower"] < meta_oof["logistic.upper"]).all()
    # every agent alone is a candidate: the choice is never beaten on the validation rows
    losses = out["meta_selection"]["validation_log_loss"]
    assert {"alone:gbm", "alone:trend_lstm"} <= set(losses)
    assert losses[out["meta_selection"]["method"]] == min(losses.values())
    metrics = out["backtest_metrics"]
    assert set(metrics) == {"meta_agent", "classification", "statistics", "baselines"}
    assert {
        "baseline:buy_and_hold",
        "baseline:sma_20_50",
        "baseline:rsi_fallback",
        "agent:gbm",
    } <= set(metrics["baselines"])
    html = out["evaluation_report"]
    assert html.startswith("<html>") and "Research software" in html
    assert html.count("data:image/png;base64,") >= 4
    assert "deflated Sharpe" in html and "Regime breakdown" in html
    pbo = metrics["statistics"]["pbo"]  # a value, or undefined with the reason why
    assert ("PBO undefined (" in html) == (not np.isfinite(pbo))
    assert np.isfinite(pbo) or "returned the same on every bar" in html
    assert "The test span covers" not in html  # a year and more of daily bars: no warning
    curves = out["equity_curves"]
    assert curves.index.min() > out["meta_oof_predictions"].index.max()  # test after validation


def test_placebo_random_walk_shows_no_edge(random_walk_run) -> None:
    clf = random_walk_run["evaluation"]["classification"]["meta_agent"]
    lo, hi = clf["accuracy_ci"]
    assert lo <= clf["chance_accuracy"] <= hi
    assert random_walk_run["evaluation"]["statistics"]["dsr"] < 0.95


def test_placebo_permuted_labels_show_no_edge(sp500) -> None:
    out = run_end_to_end(sp500.iloc[-2500:], "1d", permute_labels=True, seed=3)
    clf = out["evaluation"]["classification"]["meta_agent"]
    lo, hi = clf["accuracy_ci"]
    assert lo <= clf["chance_accuracy"] <= hi
    assert out["evaluation"]["statistics"]["dsr"] < 0.95


def test_evaluate_with_half_kelly_sizing_and_atr_trailing_stops(random_walk_run) -> None:
    from ai_trade_bot.pipelines.evaluate.nodes import evaluate_test_span, select_meta_config

    out = random_walk_run
    params = _evaluate_params()
    # calibrated probabilities near 0.4 give a negative Kelly bet at payoff 1 (no bet);
    # at payoff 2 Kelly is p - (1 - p) / 2 > 0, so sizing and stops are exercised
    params["sizing"] = params["sizing"] | {"method": "half_kelly", "kelly_cap": 0.1, "payoff": 2.0}
    params["engine"] = params["engine"] | {"stop": "atr", "stop_value": 2.0, "trailing": True}
    params["confidence_gates"] = [0.0]
    choice, returns = select_meta_config(
        out["meta_oof_predictions"], out["labels"], out["ohlcv_clean"], params
    )
    # on a random walk no method beats the prior (which never trades) and every agent
    # outputs its prior (informative 0, never traded): to exercise the sizing and the
    # stops, force the plain average and let the decision layer trade its agents
    choice = choice | {"method": "plain_average"}
    outputs = out["test_agent_outputs"].copy()
    flags = [c for c in outputs.columns if c.endswith(".informative")]
    assert flags
    outputs[flags] = 1.0
    evaluation, _ = evaluate_test_span(
        outputs,
        out["meta_agents"],
        choice,
        returns,
        out["labels"],
        out["ohlcv_clean"],
        {},
        params,
    )
    strategies = evaluation["strategies"]
    meta = strategies["meta_agent"]
    assert meta["n_trades"] > 0
    # half-Kelly capped at 10%: never more than a tenth of the market's volatility
    assert meta["volatility"] <= 0.11 * strategies["baseline:buy_and_hold"]["volatility"]
    # identical selection streams (here every configuration held flat on validation) are one
    # trial for the deflation; the report still counts every configuration tried
    distinct = np.unique(returns.to_numpy(), axis=1).shape[1]
    assert evaluation["n_trials"] == distinct + len(strategies)
    assert evaluation["n_configurations"] == len(returns.columns) + len(strategies)


def test_a_short_test_span_is_flagged_before_its_annualised_figures_are_read() -> None:
    from ai_trade_bot.evaluation.report import _short_span_text

    short = _short_span_text(
        {"start": "2024-01-01 00:00:00+00:00", "end": "2024-01-04 12:00:00+00:00"}
    )
    assert "covers 3.5 days" in short and "annualised" in short
    year = {"start": "2023-01-01 00:00:00+00:00", "end": "2024-01-01 00:00:00+00:00"}
    assert _short_span_text(year) == ""
