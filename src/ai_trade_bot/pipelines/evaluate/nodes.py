"""Nodes of the evaluate pipeline."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.agents import Agent
from ai_trade_bot.config import parse_config
from ai_trade_bot.evaluation import evaluate_test_span as evaluate_span
from ai_trade_bot.evaluation import parse_evaluate_config, select_meta
from ai_trade_bot.meta import MetaAgent
from ai_trade_bot.model_selection import WalkForwardConfig, holdout_start
from ai_trade_bot.training import predict_rows

logger = logging.getLogger(__name__)


def predict_test_span(
    model_input: pd.DataFrame, walk_forward: dict[str, Any], *models: Agent
) -> pd.DataFrame:
    """The deployment models' outputs on the held-out test span (evaluated once)."""
    config = parse_config(WalkForwardConfig, walk_forward, name="train.walk_forward")
    rows = np.arange(holdout_start(len(model_input), config), len(model_input))
    parts = [predict_rows(m, model_input, rows).add_prefix(f"{m.name}.") for m in models]
    return pd.concat(parts, axis=1)


def select_meta_config(
    meta_oof_predictions: pd.DataFrame,
    model_labels: pd.DataFrame,
    ohlcv_clean: pd.DataFrame,
    evaluate: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Pick the meta method (by log-loss, only among those beating the prior) and its
    confidence gate on the meta out-of-sample rows (see :func:`select_meta`).

    Returns:
        ``meta_selection`` and ``selection_returns`` (every candidate's per-bar returns).
    """
    config = parse_evaluate_config(evaluate)
    return select_meta(meta_oof_predictions, model_labels["direction"], ohlcv_clean, config)


def evaluate_test_span(
    test_agent_outputs: pd.DataFrame,
    meta_agents: dict[str, MetaAgent],
    meta_selection: dict[str, Any],
    selection_returns: pd.DataFrame,
    model_labels: pd.DataFrame,
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
    return evaluate_span(
        test_agent_outputs,
        meta_agents,
        meta_selection,
        selection_returns,
        model_labels["direction"],
        ohlcv_clean,
        tuning_trials,
        config,
    )


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
