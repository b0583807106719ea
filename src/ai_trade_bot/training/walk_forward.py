"""Walk-forward training of one agent: out-of-fold predictions plus a deployment fit."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.agents import Agent, make_agent
from ai_trade_bot.modeling.scoring import class_prior, direction_scores, volatility_scores
from ai_trade_bot.training.folds import Fold, WalkForwardConfig, final_fit_rows, walk_forward_folds

logger = logging.getLogger(__name__)


@dataclass
class WalkForwardResult:
    """What one agent's walk-forward run produced."""

    oof: pd.DataFrame  # agent outputs on every fold's test rows, plus a 'fold' column
    final_agent: Agent
    fold_scores: list[dict[str, float]] = field(default_factory=list)
    oof_scores: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    calibration: list[dict[str, Any]] = field(default_factory=list)  # per fold, then final


def calibration_record(agent: Agent) -> dict[str, Any]:
    """How a fitted agent was calibrated on its calibration rows (for the summary)."""
    calibration = getattr(agent, "calibration_", None)
    if calibration is not None:
        return {
            "temperature": calibration.temperature,
            "shrink_to_prior": calibration.shrink,
            "outputs_prior": calibration.collapsed,
            "val_log_loss": calibration.val_log_loss,
            "val_log_loss_prior": calibration.val_log_loss_prior,
            "note": calibration.notes[-1] if calibration.notes else "",
        }
    if hasattr(agent, "correction_weight_"):
        return {
            "correction_weight": agent.correction_weight_,
            "plain_garch": agent.correction_weight_ == 0.0,
        }
    return {}


def seen_rows(fold_train: np.ndarray, fold_val: np.ndarray) -> np.ndarray:
    """The rows a fold's model learns from (fit rows and early-stopping rows)."""
    return np.concatenate([fold_train, fold_val])


def score_output(
    agent: Agent, out: pd.DataFrame, y: pd.DataFrame, prior: np.ndarray | None
) -> dict[str, float]:
    """Scores of an output frame against the labels at its rows."""
    labels = y.loc[out.index]
    if agent.output_kind == "direction":
        probs = out[["down", "flat", "up"]].to_numpy()
        return direction_scores(labels["direction"].to_numpy(), probs, prior)
    if agent.output_kind == "volatility":
        horizon = agent.get_params()["horizon"]
        realized = labels[f"fwd_realized_vol_{horizon}"].to_numpy() / np.sqrt(horizon)
        return volatility_scores(out["pred_vol"].to_numpy(), out["garch_vol"].to_numpy(), realized)
    counts = out["regime"].value_counts(normalize=True)
    return {f"share_{int(k)}": float(v) for k, v in counts.items()} | {"n": float(len(out))}


def baseline_comparison(kind: str, scores: dict[str, float]) -> dict[str, Any]:
    """An agent's out-of-fold score beside its trivial baseline, and whether it beats it:
    the class prior's log-loss for direction agents, plain GARCH(1,1)'s QLIKE for volatility.
    """
    if kind == "direction":
        metric, base, baseline = "log_loss", "prior_log_loss", "class prior"
    elif kind == "volatility":
        metric, base, baseline = "qlike", "qlike_garch", "GARCH(1,1)"
    else:
        return {"baseline": None}
    return {
        "baseline": baseline,
        "metric": metric,
        "value": scores[metric],
        "baseline_value": scores[base],
        "ratio": scores[metric] / scores[base] if scores[base] else float("nan"),
        # strictly: an agent that fell back to its baseline everywhere ties it, and a tie
        # is no edge
        "beats_baseline": scores[metric] < scores[base],
        "is_baseline": scores[metric] == scores[base],
    }


def fit_on_rows(
    agent: Agent,
    X: pd.DataFrame,
    y: pd.DataFrame,
    train: np.ndarray,
    val: np.ndarray,
    *,
    evidence: Any = None,
) -> Agent:
    """Fit on contiguous ``train`` rows, early-stopping and calibrating on ``val`` rows
    (gap between); ``evidence`` goes to the calibration (see :meth:`Agent.fit`)."""
    start = int(train[0])
    stop = int(val[-1]) + 1 if len(val) else int(train[-1]) + 1
    gap = int(val[0] - train[-1] - 1) if len(val) else 0
    return agent.fit(
        X.iloc[start:stop], y.iloc[start:stop], val_size=len(val), gap=gap, evidence=evidence
    )


def predict_rows(
    agent: Agent, X: pd.DataFrame, rows: np.ndarray, *, calibrated: bool = True
) -> pd.DataFrame:
    """Predict contiguous ``rows``, giving windowed agents their preceding context."""
    start = int(rows[0]) - (agent.min_history - 1)
    if start < 0:
        raise ValueError(
            f"agent '{agent.name}' needs {agent.min_history - 1} context rows before row "
            f"{rows[0]}; start the first fold later (train.walk_forward.min_train_fraction)."
        )
    return agent.predict(X.iloc[start : int(rows[-1]) + 1], calibrated=calibrated)


def run_walk_forward(
    name: str,
    params: dict[str, Any],
    X: pd.DataFrame,
    y: pd.DataFrame,
    config: WalkForwardConfig,
    *,
    on_fold: Callable[[int, dict[str, float]], None] | None = None,
) -> WalkForwardResult:
    """Fit ``name`` on each fold's training window, predict its test block, then fit once
    on all pre-test rows for deployment. Nothing here touches the held-out test span.

    Each model's calibration judges its edge on its own calibration rows and on the
    uncalibrated out-of-fold outputs of the folds before it (and the deployment model on
    all of them): every out-of-fold row is honest evidence of whether this kind of model
    has an edge, and one tail alone has little power."""
    started = time.perf_counter()
    folds: list[Fold] = walk_forward_folds(len(X), config)
    parts, raw_parts, fold_scores, priors, calibration = [], [], [], [], []
    evidence = None
    for fold in folds:
        t0 = time.perf_counter()
        agent = fit_on_rows(
            make_agent(name, **params), X, y, fold.train, fold.val, evidence=evidence
        )
        out = predict_rows(agent, X, fold.test)
        if agent.output_kind in ("direction", "volatility"):
            raw_parts.append(predict_rows(agent, X, fold.test, calibrated=False))
            evidence = agent.calibration_evidence(pd.concat(raw_parts), y)
        # the trivial baseline this fold's model must beat: the class shares it learned from
        prior = class_prior(y["direction"].iloc[seen_rows(fold.train, fold.val)])
        priors.append(np.tile(prior, (len(out), 1)))
        calibration.append({"fold": fold.number, **calibration_record(agent)})
        scores = score_output(agent, out, y, prior)
        scores["seconds"] = time.perf_counter() - t0
        fold_scores.append(scores)
        logger.info(
            "agent %s fold %d/%d: train %d rows, test %d rows, %s",
            name,
            fold.number + 1,
            len(folds),
            len(fold.train),
            len(fold.test),
            {k: round(v, 4) for k, v in scores.items() if k != "n"},
        )
        if on_fold is not None:
            on_fold(fold.number, scores)
        parts.append(out.assign(fold=float(fold.number)))
    oof = pd.concat(parts)
    train_rows, val_rows = final_fit_rows(len(X), config)
    final = fit_on_rows(make_agent(name, **params), X, y, train_rows, val_rows, evidence=evidence)
    calibration.append({"fold": "final", **calibration_record(final)})
    oof_scores = score_output(final, oof.drop(columns="fold"), y, np.concatenate(priors))
    if raw_parts and final.output_kind == "direction":  # the network before calibration
        raw = score_output(final, pd.concat(raw_parts), y, None)
        oof_scores |= {f"raw_{k}": raw[k] for k in ("accuracy", "macro_f1", "log_loss")}
    logger.info("agent %s: out-of-fold %s", name, {k: round(v, 4) for k, v in oof_scores.items()})
    return WalkForwardResult(
        oof, final, fold_scores, oof_scores, time.perf_counter() - started, calibration
    )
