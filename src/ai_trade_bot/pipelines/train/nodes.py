"""Nodes of the train pipeline."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.agents import Agent, parse_agent_block
from ai_trade_bot.config import parse_config
from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.modeling.meta import MetaAgent, parse_meta_config, stack_agents
from ai_trade_bot.registry import tracking
from ai_trade_bot.registry.bundle import model_frame
from ai_trade_bot.training.folds import (
    WalkForwardConfig,
    folds_problem,
    holdout_start,
    minimum_rows,
    walk_forward_folds,
)
from ai_trade_bot.training.walk_forward import baseline_comparison, run_walk_forward

logger = logging.getLogger(__name__)


def build_model_input(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    ohlcv_clean: pd.DataFrame,
    walk_forward: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Join features with the raw candles, drop warm-up and label-less rows, plan folds.

    Returns:
        ``model_input`` (X), ``model_labels`` (y) and ``walk_forward_plan`` (fold and test
        span boundaries as timestamps).
    """
    config = parse_config(WalkForwardConfig, walk_forward, name="train.walk_forward")
    if not features.index.equals(labels.index):
        raise DataValidationError("features and labels must share one index (same candles)")
    X = model_frame(features, ohlcv_clean)
    keep = labels.reindex(X.index).notna().all(axis=1)
    X, y = X[keep], labels.reindex(X.index)[keep]
    problem = folds_problem(len(X), config)
    if problem:
        complete = features.notna().all(axis=1).to_numpy()
        warmup = int(np.argmax(complete)) if complete.any() else len(features)
        raise DataValidationError(
            f"train: {len(X)} complete rows with labels (of {len(features)} candles; the "
            f"feature warm-up takes the first {warmup}) are too few for train.walk_forward "
            f"({problem}); it needs at least {minimum_rows(config)}. Ingest a longer history, "
            "shorten the feature windows behind the warm-up, or use fewer folds."
        )
    folds = walk_forward_folds(len(X), config)
    test_start = holdout_start(len(X), config)
    plan = {
        "rows": len(X),
        "dropped_rows": len(features) - len(X),
        "test_span": {
            "start": str(X.index[test_start]),
            "end": str(X.index[-1]),
            "rows": len(X) - test_start,
        },
        "folds": [
            {
                "fold": f.number,
                "train_start": str(X.index[f.train[0]]),
                "train_end": str(X.index[f.train[-1]]),
                "train_rows": len(f.train),
                "val_rows": len(f.val),
                "test_start": str(X.index[f.test[0]]),
                "test_end": str(X.index[f.test[-1]]),
                "test_rows": len(f.test),
            }
            for f in folds
        ],
    }
    logger.info(
        "model input: %d rows (%d dropped), %d folds, test span from %s",
        len(X),
        plan["dropped_rows"],
        len(folds),
        plan["test_span"]["start"],
    )
    return X, y, plan


def train_agent(
    model_input: pd.DataFrame,
    model_labels: pd.DataFrame,
    walk_forward: dict[str, Any],
    agent: dict[str, Any],
    tuned: dict[str, Any],
) -> tuple[pd.DataFrame, Agent, dict[str, Any]]:
    """Walk-forward fit one agent: out-of-fold predictions, deployment model, scores.

    Args:
        agent: ``params:agents.<name>``: ``name``, ``params`` (hyperparameters) and
            ``use_tuned`` (apply the tune pipeline's best parameters when present).
        tuned: Best parameters found by ``tune`` for this agent (``{}`` if none).
    """
    block = parse_agent_block(agent, name=str((agent or {}).get("name", "?")))
    name = block.name
    params = dict(block.params or {})
    if block.use_tuned and tuned.get("best_params"):
        logger.info("agent %s: applying tuned parameters %s", name, tuned["best_params"])
        params.update(tuned["best_params"])
    config = parse_config(WalkForwardConfig, walk_forward, name="train.walk_forward")
    parent_run = tracking.active_run_id()
    with tracking.agent_run(name, params | {"walk_forward": walk_forward}) as tracked:
        result = run_walk_forward(
            name,
            params,
            model_input,
            model_labels,
            config,
            on_fold=tracking.log_fold if tracked else None,
        )
        summary = {
            "agent": name,
            "params": params,
            "oof": result.oof_scores,
            "baseline": baseline_comparison(result.final_agent.output_kind, result.oof_scores),
            "calibration": result.calibration,
            "folds": result.fold_scores,
            "seconds": result.seconds,
            "mlflow_run_id": parent_run,
        }
        if tracked:
            import mlflow

            mlflow.log_metrics({f"oof/{k}": v for k, v in result.oof_scores.items()})
            mlflow.log_metric("train_seconds", result.seconds)
            sample = model_input.iloc[-(result.final_agent.min_history + 4) :]
            summary["model_uri"] = tracking.log_agent_model(result.final_agent, sample)
    oof = result.oof.add_prefix(f"{name}.").rename(columns={f"{name}.fold": "fold"})
    return oof, result.final_agent, summary


def collect_oof_predictions(*parts: pd.DataFrame) -> pd.DataFrame:
    """Join every agent's out-of-fold outputs on their shared rows (one wide frame)."""
    fold = parts[0]["fold"]
    joined = pd.concat([p.drop(columns="fold") for p in parts], axis=1, join="inner")
    return joined.assign(fold=fold.reindex(joined.index))


def summarise_training(*summaries: dict[str, Any]) -> dict[str, Any]:
    """One report of every agent's out-of-fold scores beside its trivial baseline, and how
    each fold's model was calibrated (an agent that outputs the prior says so here)."""
    out = {}
    for s in summaries:
        out[s["agent"]] = {
            "oof": s["oof"],
            "baseline": s["baseline"],
            "calibration": s["calibration"],
            "seconds": s["seconds"],
            "mlflow_run_id": s.get("mlflow_run_id"),
        }
        if s["baseline"].get("baseline"):
            logger.info(
                "agent %s: out-of-fold %s %.4f vs %s %.4f: %s",
                s["agent"],
                s["baseline"]["metric"],
                s["baseline"]["value"],
                s["baseline"]["baseline"],
                s["baseline"]["baseline_value"],
                "beats it" if s["baseline"]["beats_baseline"] else "does NOT beat it",
            )
    return out


def fit_meta_agents(
    oof_predictions: pd.DataFrame, model_labels: pd.DataFrame, meta: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, MetaAgent], dict[str, Any]]:
    """Stack the agents' out-of-fold outputs with every configured meta method.

    A second walk-forward over the out-of-fold rows gives the meta-agent's own
    out-of-sample predictions; each method is then fit on all out-of-fold rows for use on
    the held-out span. The ablation compares, on the same meta out-of-sample rows, every
    method with each single agent and with a plain average.

    Returns:
        ``meta_oof_predictions`` (columns ``<method>.<output>``), ``meta_agents`` (method ->
        fitted MetaAgent) and ``meta_ablation`` (scores per candidate).
    """
    config = parse_meta_config(meta)
    return stack_agents(oof_predictions.drop(columns="fold"), model_labels["direction"], config)
