"""Nodes of the train pipeline."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ai_trade_bot import tracking
from ai_trade_bot.agents import Agent
from ai_trade_bot.agents.base import BAR_COLUMNS
from ai_trade_bot.config import parse_config
from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.meta import MetaAgent, direction_agents, meta_walk_forward, plain_average
from ai_trade_bot.model_selection import WalkForwardConfig, holdout_start, walk_forward_folds
from ai_trade_bot.scoring import class_prior, direction_scores
from ai_trade_bot.training import run_walk_forward

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
    bars = ohlcv_clean.reindex(features.index).set_axis(list(BAR_COLUMNS), axis=1)
    X = features.join(bars)
    keep = X.notna().all(axis=1) & labels.notna().all(axis=1)
    X, y = X[keep], labels[keep]
    folds = walk_forward_folds(len(X), config)
    test_start = holdout_start(len(X), config)
    plan = {
        "rows": len(X),
        "dropped_rows": int((~keep).sum()),
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
    name = agent["name"]
    params = dict(agent.get("params") or {})
    if agent.get("use_tuned", True) and tuned.get("best_params"):
        logger.info("agent %s: applying tuned parameters %s", name, tuned["best_params"])
        params.update(tuned["best_params"])
    config = parse_config(WalkForwardConfig, walk_forward, name="train.walk_forward")
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
            "folds": result.fold_scores,
            "seconds": result.seconds,
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
    """One report of every agent's out-of-fold scores."""
    return {s["agent"]: {"oof": s["oof"], "seconds": s["seconds"]} for s in summaries}


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
    wf = parse_config(WalkForwardConfig, meta["walk_forward"], name="meta.walk_forward")
    if wf.test_fraction:
        raise DataValidationError(
            "meta.walk_forward.test_fraction must be 0: the held-out "
            "span is already outside the out-of-fold rows"
        )
    labels = model_labels["direction"]
    inputs = oof_predictions.drop(columns="fold")
    params = {
        "disagreement_penalty": meta.get("disagreement_penalty", 1.0),
        "seed": meta.get("seed", 42),
    }
    parts, fitted = [], {}
    for method in meta["methods"]:
        out = meta_walk_forward(inputs, labels, params | {"method": method}, wf)
        parts.append(out.drop(columns="meta_fold").add_prefix(f"{method}."))
        fitted[method] = MetaAgent(method=method, **params).fit(inputs, labels)
        logger.info("meta %s: %d out-of-sample rows", method, len(out))
    meta_oof = pd.concat(parts, axis=1, join="inner")
    rows = meta_oof.index
    y = labels.reindex(rows).to_numpy()
    prior = class_prior(labels.loc[: rows[0]].iloc[:-1])
    ablation: dict[str, Any] = {}
    for method in meta["methods"]:
        probs = meta_oof[[f"{method}.down", f"{method}.flat", f"{method}.up"]].to_numpy()
        ablation[f"meta:{method}"] = direction_scores(y, probs, prior)
    for agent in direction_agents(inputs.columns):
        probs = inputs.loc[rows, [f"{agent}.down", f"{agent}.flat", f"{agent}.up"]].to_numpy()
        ablation[f"agent:{agent}"] = direction_scores(y, probs, prior)
    avg = plain_average(inputs.loc[rows], direction_agents(inputs.columns))
    ablation["plain_average"] = direction_scores(y, avg[["down", "flat", "up"]].to_numpy(), prior)
    return meta_oof, fitted, ablation
