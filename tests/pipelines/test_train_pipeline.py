"""The train pipeline on a small slice: OOF predictions, models and nested MLflow runs."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.agents import Agent
from ai_trade_bot.features.build import LabelConfig, build_features, labels_for
from ai_trade_bot.pipelines.train import create_pipeline
from ai_trade_bot.pipelines.train.nodes import build_model_input
from tests.agents.conftest import FAST, TINY_FEATURES
from tests.conftest import make_ohlcv

AGENTS = ("trend_lstm", "volatility", "gbm")
WALK_FORWARD = {
    "n_folds": 2,
    "min_train_fraction": 0.5,
    "val_fraction": 0.2,
    "purge": 3,
    "embargo": 2,
    "test_fraction": 0.2,
}
META_WALK_FORWARD = {
    "n_folds": 2,
    "min_train_fraction": 0.5,
    "val_fraction": 0.0,
    "purge": 3,
    "embargo": 2,
    "test_fraction": 0.0,
}
AGENT_PARAMS = {
    "trend_lstm": {"window": 8, "hidden": 8, **FAST},
    "volatility": {"horizon": 3, "burn_in": 10, "hidden": 8, **FAST},
    "gbm": {"n_estimators": 20, "min_child_samples": 10, "early_stopping_rounds": 5},
}


@pytest.fixture(scope="module")
def inputs() -> dict:
    ohlcv = make_ohlcv(700, seed=5)
    catalog = {
        "features": build_features(ohlcv, timeframe="1h", config=TINY_FEATURES),
        "labels": labels_for(ohlcv, LabelConfig(horizon=3)),
        "ohlcv_clean": ohlcv,
        "params:train.walk_forward": WALK_FORWARD,
        "params:meta": {
            "methods": ["confidence_vote", "logistic"],
            "walk_forward": META_WALK_FORWARD,
        },
    }
    for name in AGENTS:
        catalog[f"params:agents.{name}"] = {"name": name, "params": AGENT_PARAMS[name]}
        catalog[f"{name}.tuned_params"] = {}
    return catalog


@pytest.fixture
def tracking_uri(tmp_path):
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)


def test_train_pipeline_produces_oof_models_and_nested_runs(run, inputs, tracking_uri) -> None:
    mlflow.set_experiment("train-test")
    with mlflow.start_run(run_name="parent") as parent:
        out = run(create_pipeline(agents=AGENTS), inputs)

    X, _, plan = build_model_input(
        inputs["features"], inputs["labels"], inputs["ohlcv_clean"], WALK_FORWARD
    )
    oof = out["oof_predictions"]
    test_start = pd.Timestamp(plan["test_span"]["start"])
    assert oof.index.max() < test_start  # the held-out span is never predicted in train
    assert oof.index.min() == pd.Timestamp(plan["folds"][0]["test_start"])
    assert set(oof["fold"]) == {0.0, 1.0}
    for col in ("trend_lstm.down", "trend_lstm.confidence", "gbm.up", "volatility.pred_vol"):
        assert col in oof.columns and oof[col].notna().all()
    probs = oof[["trend_lstm.down", "trend_lstm.flat", "trend_lstm.up"]].sum(axis=1)
    np.testing.assert_allclose(probs, 1.0, atol=1e-6)
    for name in AGENTS:
        assert isinstance(out[f"{name}.model"], Agent) and out[f"{name}.model"].is_fitted()
    meta_oof = out["meta_oof_predictions"]
    assert meta_oof.index.min() > oof.index.min()  # its own walk-forward: out of sample
    direction = {"trend_lstm", "trend_transformer", "pattern", "gbm"} & set(AGENTS)
    assert set(out["meta_agents"]) == {
        "prior",
        "plain_average",
        "confidence_vote",
        "logistic",
    } | {f"alone:{a}" for a in direction}
    assert {"meta:logistic", "agent:gbm", "meta:plain_average", "meta:prior"} <= set(
        out["meta_ablation"]
    )
    summary = out["train_summary"]
    assert set(summary) == set(AGENTS)
    assert 0 <= summary["gbm"]["oof"]["accuracy"] <= 1
    assert summary["volatility"]["oof"]["qlike_garch"] > 0

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert sorted(r.info.run_name for r in children) == sorted(AGENTS)
    lstm = next(r for r in children if r.info.run_name == "trend_lstm")
    assert "oof/accuracy" in lstm.data.metrics and "oof/log_loss" in lstm.data.metrics
    history = client.get_metric_history(lstm.info.run_id, "fold/accuracy")
    assert sorted(m.step for m in history) == [0, 1]
    assert lstm.data.params["agent.window"] == "8"
    # the deployment model is an MLflow model with a signature that serves predictions
    served = mlflow.pyfunc.load_model(logged_model_uri(client, lstm))
    assert served.metadata.signature is not None
    tail = X.iloc[-20:]
    expected = out["trend_lstm.model"].predict(tail)
    np.testing.assert_allclose(served.predict(tail)["up"].to_numpy(), expected["up"].to_numpy())


def logged_model_uri(client: mlflow.MlflowClient, run) -> str:
    """The URI of the model logged in ``run``."""
    models = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    assert len(models) == 1
    return models[0].model_uri


def test_cpu_training_is_deterministic(run, inputs) -> None:
    first = run(create_pipeline(agents=("trend_lstm",)), inputs)["oof_predictions"]
    second = run(create_pipeline(agents=("trend_lstm",)), inputs)["oof_predictions"]
    pd.testing.assert_frame_equal(first, second, check_exact=True)


def test_tuned_parameters_are_applied_when_use_tuned(inputs) -> None:
    from ai_trade_bot.pipelines.train.nodes import build_model_input, train_agent

    X, y, _ = build_model_input(
        inputs["features"], inputs["labels"], inputs["ohlcv_clean"], WALK_FORWARD
    )
    tuned = {"best_params": {"num_leaves": 3}}
    block = {"name": "gbm", "params": AGENT_PARAMS["gbm"]}
    _, model, summary = train_agent(X, y, WALK_FORWARD, block, tuned)
    assert summary["params"]["num_leaves"] == 3 and model.num_leaves == 3
    _, model, _ = train_agent(X, y, WALK_FORWARD, block | {"use_tuned": False}, tuned)
    assert model.num_leaves == 15
