"""Nodes of the evaluate pipeline."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.agents import Agent
from ai_trade_bot.config import parse_config
from ai_trade_bot.evaluation.honesty import evaluate_test_span as evaluate_span
from ai_trade_bot.evaluation.selection import select_meta
from ai_trade_bot.evaluation.settings import parse_evaluate_config
from ai_trade_bot.modeling.meta import MetaAgent
from ai_trade_bot.registry import tracking
from ai_trade_bot.registry.bundle import model_frame, predict_agents
from ai_trade_bot.training.folds import WalkForwardConfig, holdout_start

logger = logging.getLogger(__name__)


def predict_test_span(
    model_input: pd.DataFrame,
    features: pd.DataFrame,
    ohlcv_clean: pd.DataFrame,
    walk_forward: dict[str, Any],
    *models: Agent,
) -> pd.DataFrame:
    """The deployment models' outputs on the held-out test span (evaluated once): every
    candle from the span's start with complete features, the last ones whose labels are
    not known yet included, exactly as the bundle and the live runner predict them."""
    config = parse_config(WalkForwardConfig, walk_forward, name="train.walk_forward")
    start = model_input.index[holdout_start(len(model_input), config)]
    X = model_frame(features, ohlcv_clean)
    return predict_agents(list(models), X, int(X.index.get_loc(start)))


def select_meta_config(
    meta_oof_predictions: pd.DataFrame,
    labels: pd.DataFrame,
    ohlcv_clean: pd.DataFrame,
    evaluate: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Pick the meta method (by log-loss, only among those beating the prior) and its
    confidence gate on the meta out-of-sample rows (see :func:`select_meta`).

    Returns:
        ``meta_selection`` and ``selection_returns`` (every candidate's per-bar returns).
    """
    config = parse_evaluate_config(evaluate)
    return select_meta(meta_oof_predictions, labels["direction"], ohlcv_clean, config)


def evaluate_test_span(
    test_agent_outputs: pd.DataFrame,
    meta_agents: dict[str, MetaAgent],
    meta_selection: dict[str, Any],
    selection_returns: pd.DataFrame,
    labels: pd.DataFrame,
    ohlcv_clean: pd.DataFrame,
    tune_summaries: dict[str, Any],
    evaluate: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Backtest the chosen meta-agent, every agent and the baselines on every clean bar of
    the test span, with the honest statistics (see :func:`evaluate_span`).

    Returns:
        ``evaluation`` (everything the report shows) and ``equity_curves`` (per strategy).
    """
    config = parse_evaluate_config(evaluate)
    tuning_trials = int(sum(s.get("n_trials", 0) for s in tune_summaries.values()))
    evaluation, curves = evaluate_span(
        test_agent_outputs,
        meta_agents,
        meta_selection,
        selection_returns,
        labels["direction"],
        ohlcv_clean,
        tuning_trials,
        config,
    )
    return evaluation | {"mlflow_run_id": tracking.active_run_id()}, curves


def backtest_metrics(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The flat metrics file read by ``dvc metrics show/diff``."""
    meta = evaluation["strategies"]["meta_agent"]
    clf = evaluation["classification"]["meta_agent"]
    stats = evaluation["statistics"]
    return {
        "meta_agent": {
            k: meta[k]
            for k in (
                "total_return",
                "annual_return",
                "sharpe",
                "sortino",
                "max_drawdown",
                "n_trades",
                "win_rate",
                "exposure",
            )
        },
        "classification": {
            k: clf[k] for k in ("accuracy", "log_loss", "brier", "prior_accuracy", "prior_log_loss")
        },
        "statistics": {k: stats[k] for k in ("psr", "dsr", "pbo", "sharpe_annual", "n_trials")},
        "baselines": {
            k: v["sharpe"] for k, v in evaluation["strategies"].items() if k != "meta_agent"
        },
    }


def flatten_metrics(backtest_metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The metrics file as MLflow metrics (``evaluate.<group>.<name>``)."""
    flat: dict[str, dict[str, float]] = {}
    for group, values in backtest_metrics.items():
        for name, value in values.items():
            if isinstance(value, int | float) and np.isfinite(value):
                key = f"evaluate.{group}.{name}".replace(":", "_")
                flat[key] = {"value": float(value), "step": 0}
    return flat
