"""Nodes of the tune pipeline."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import optuna
import pandas as pd

from ai_trade_bot.config import parse_config
from ai_trade_bot.training.folds import WalkForwardConfig
from ai_trade_bot.training.tuning import TuneConfig, run_study, storage_url

logger = logging.getLogger(__name__)


def tune_agent(
    model_input: pd.DataFrame,
    model_labels: pd.DataFrame,
    walk_forward: dict[str, Any],
    tune: dict[str, Any],
    agents: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the study and return the best parameters and a summary with the trial count.

    Returns:
        ``tune_best_params`` (read by the next ``train`` when ``use_tuned``) and
        ``tune_summary`` (also as MLflow metrics: ``tune.n_trials`` feeds the deflated Sharpe).
    """
    config = parse_config(TuneConfig, tune, name="tune")
    wf = parse_config(WalkForwardConfig, walk_forward, name="train.walk_forward")
    base = dict((agents.get(config.agent) or {}).get("params") or {})
    study = run_study(config, base, model_input, model_labels, wf)
    states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
    summary = {
        "agent": config.agent,
        "study_name": study.study_name,
        "metric": study.user_attrs.get("metric"),
        "n_trials": len(study.trials),
        "trial_states": states,
        "best_value": study.best_value,
        "best_params": study.best_params,
        "storage": "env:OPTUNA_STORAGE"
        if storage_url(config) != config.storage
        else config.storage,
        "executor": dataclasses.asdict(config.executor),
        "worker_pids": len({t.user_attrs.get("worker_pid") for t in study.trials} - {None}),
    }
    logger.info(
        "tune %s: %d trials %s, best %s=%.5f with %s",
        config.agent,
        len(study.trials),
        states,
        summary["metric"],
        study.best_value,
        study.best_params,
    )
    best = {
        "agent": config.agent,
        "best_params": study.best_params,
        "best_value": study.best_value,
        "n_trials": len(study.trials),
    }
    return best, summary


def tune_metrics(tune_summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The study's size and best value as MLflow metrics."""
    return {
        "tune.n_trials": {"value": float(tune_summary["n_trials"]), "step": 0},
        "tune.best_value": {"value": float(tune_summary["best_value"]), "step": 0},
        "tune.n_complete": {
            "value": float(
                tune_summary["trial_states"].get(optuna.trial.TrialState.COMPLETE.name, 0)
            ),
            "step": 0,
        },
    }
