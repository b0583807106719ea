"""Honest figures for the held-out span: classification against the class prior, the
probabilistic and deflated Sharpe, PBO, bootstrap intervals and a per-regime breakdown;
:func:`evaluate_test_span` backtests the chosen meta-agent, every agent and the baselines
once on it."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, roc_auc_score

from ai_trade_bot.agents.regime import REGIMES
from ai_trade_bot.backtest.metrics import periods_per_year, sharpe_columns
from ai_trade_bot.backtest.statistics import (
    block_bootstrap_ci,
    deflated_sharpe,
    probability_of_backtest_overfitting,
    sharpe_per_period,
)
from ai_trade_bot.evaluation.settings import DISCLAIMER, EvaluateConfig
from ai_trade_bot.evaluation.strategies import (
    Strategy,
    baseline_targets,
    make_span,
    method_columns,
    model_strategy,
    run_strategy,
)
from ai_trade_bot.modeling.meta import ABS_PER_SIGMA, direction_agents
from ai_trade_bot.modeling.scoring import class_prior, direction_scores

logger = logging.getLogger(__name__)


def classification_report(
    output: pd.DataFrame, labels: pd.Series, prior: np.ndarray
) -> dict[str, Any]:
    """Accuracy (with a block-bootstrap interval and the chance level), per-class
    precision/recall/F1, log-loss, Brier, one-vs-rest AUC, confusion matrix, calibration,
    over the rows whose label is known."""
    known = labels.reindex(output.index).notna().to_numpy()
    output = output[known]
    y = labels.reindex(output.index).to_numpy().astype(int)
    probs = output[["down", "flat", "up"]].to_numpy()
    pred = probs.argmax(axis=1)
    scores = direction_scores(y, probs, prior)
    cm = confusion_matrix(y, pred, labels=[0, 1, 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(np.diag(cm) / cm.sum(axis=0))
        recall = np.nan_to_num(np.diag(cm) / cm.sum(axis=1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    aucs = {}
    for k, name in enumerate(("down", "flat", "up")):
        aucs[name] = (
            float(roc_auc_score(y == k, probs[:, k]))
            if 0 < (y == k).sum() < len(y)
            else float("nan")
        )
    correct = (pred == y).astype(float)
    lo, hi = block_bootstrap_ci(correct, np.mean, n_boot=1000, seed=0)
    pred_share = np.bincount(pred, minlength=3) / len(pred)
    true_share = np.bincount(y, minlength=3) / len(y)
    direction = direction_hits(pred, y)
    bins = np.linspace(0, 1, 11)
    which = np.clip(np.digitize(probs[:, 2], bins) - 1, 0, 9)
    calibration = [
        {
            "bin": float((bins[b] + bins[b + 1]) / 2),
            "predicted": float(probs[which == b, 2].mean()),
            "observed": float((y[which == b] == 2).mean()),
            "n": int((which == b).sum()),
        }
        for b in range(10)
        if (which == b).any()
    ]
    return scores | {
        "accuracy_ci": [lo, hi],
        "chance_accuracy": float((pred_share * true_share).sum()),
        **direction,
        "precision": dict(zip(("down", "flat", "up"), precision.tolist(), strict=True)),
        "recall": dict(zip(("down", "flat", "up"), recall.tolist(), strict=True)),
        "f1": dict(zip(("down", "flat", "up"), f1.tolist(), strict=True)),
        "auc": aucs,
        "confusion_matrix": cm.tolist(),
        "calibration_up": calibration,
    }


def direction_hits(pred: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The hit rate of directional calls: on the rows where the prediction and the label are
    both down or up, how often they agree, with a block-bootstrap interval and the chance
    level of a call drawn independently with the same shares.

    This, not the three-class accuracy, is what a leak of the future moves. Which rows end
    up flat depends on volatility (the flat band is a multiple of the trailing sigma), so a
    model can beat three-class chance on shuffled bars through volatility alone, which
    tells nothing about direction and earns nothing.
    """
    both = (pred != 1) & (y != 1)
    n = int(both.sum())
    if n < 20:
        nan = float("nan")
        return {"direction_rows": n, "direction_accuracy": nan, "direction_ci": [nan, nan],
                "direction_chance": nan}  # fmt: skip
    hits = (pred[both] == y[both]).astype(float)
    lo, hi = block_bootstrap_ci(hits, np.mean, n_boot=1000, seed=0)
    up_pred, up_true = (pred[both] == 2).mean(), (y[both] == 2).mean()
    chance = up_pred * up_true + (1 - up_pred) * (1 - up_true)
    return {
        "direction_rows": n,
        "direction_accuracy": float(hits.mean()),
        "direction_ci": [lo, hi],
        "direction_chance": float(chance),
    }


def pbo_undefined_reason(tried: int, distinct: int) -> str:
    """Why PBO has no value (see :func:`probability_of_backtest_overfitting`)."""
    if tried < 2:
        return "only one configuration was tried: there was no selection to overfit"
    return (
        f"the {tried} configurations tried returned the same on every bar (for example, none "
        "traded): there was no choice among them to overfit"
    )


def honest_statistics(
    strategy: Strategy,
    n_trials: int,
    trial_returns: pd.DataFrame,
    config: EvaluateConfig,
    ppy: float | None = None,
    *,
    sharpe_trials: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """PSR/DSR of the chosen strategy, PBO of the selection, bootstrap Sharpe interval.

    ``sharpe_trials``: the trials whose spread of Sharpe sets the deflation's threshold
    (default ``trial_returns``); ``n_trials`` always counts every trial."""
    r = strategy.returns.to_numpy()
    ppy = periods_per_year(strategy.returns.index) if ppy is None else ppy
    # configurations with identical returns are one configuration (as PBO counts them):
    # copies of a strategy that never trades would otherwise widen the spread of Sharpe
    # the deflation assumes luck produced, and deflate a real edge toward nothing
    spread = trial_returns if sharpe_trials is None else sharpe_trials
    distinct = np.unique(spread.to_numpy(dtype=np.float64), axis=1)
    trial_sr = sharpe_columns(distinct)
    dsr = deflated_sharpe(r, n_trials, trial_sr)
    lo, hi = block_bootstrap_ci(
        r, lambda x: sharpe_per_period(x) * np.sqrt(ppy), n_boot=config.bootstrap, seed=config.seed
    )
    pbo = (
        probability_of_backtest_overfitting(trial_returns.to_numpy(), config.pbo_blocks)
        if trial_returns.shape[1] >= 2
        else {"pbo": float("nan"), "n_distinct": trial_returns.shape[1]}
    )
    if not np.isfinite(pbo["pbo"]):
        pbo["undefined"] = pbo_undefined_reason(trial_returns.shape[1], pbo["n_distinct"])
    return dsr | {
        "sharpe_annual": sharpe_per_period(r) * np.sqrt(ppy),
        "sharpe_ci": [lo, hi],
        **{f"pbo_{k}" if k != "pbo" else k: v for k, v in pbo.items()},
    }


def regime_breakdown(
    strategy: Strategy,
    regime: pd.Series,
    labels: pd.Series,
    output: pd.DataFrame,
    names: tuple[str, ...],
    ppy: float | None = None,
) -> list[dict[str, Any]]:
    """Return, Sharpe and hit rate of a strategy within each predicted regime."""
    rows = []
    index = strategy.returns.index
    ppy = periods_per_year(index) if ppy is None else ppy
    aligned = regime.reindex(index).to_numpy()
    probs = output[["down", "flat", "up"]]
    truth = labels.reindex(output.index)
    hit = (probs.to_numpy().argmax(axis=1) == truth.to_numpy()).astype(float)
    hit[truth.isna().to_numpy()] = np.nan
    hit = pd.Series(hit, index=output.index).reindex(index).to_numpy()
    for k, name in enumerate(names):
        mask = aligned == k
        if not mask.any():
            continue
        r = strategy.returns.to_numpy()[mask]
        rows.append(
            {
                "regime": name,
                "bars": int(mask.sum()),
                "mean_return": float(r.mean()),
                "sharpe_annual": sharpe_per_period(r) * np.sqrt(ppy),
                "accuracy": float(np.nanmean(hit[mask])) if np.isfinite(hit[mask]).any() else 0.0,
            }
        )
    return rows


def evaluate_test_span(
    agent_outputs: pd.DataFrame,
    meta_agents: dict[str, Any],
    choice: dict[str, Any],
    selection_returns: pd.DataFrame,
    labels: pd.Series,
    ohlcv: pd.DataFrame,
    tuning_trials: int,
    config: EvaluateConfig,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Backtest the chosen meta-agent, every single agent and the baselines on every clean
    bar of the held-out span with the same costs; classification against the prior, the
    honest statistics, and why the strategies traded or did not.

    Returns:
        ``evaluation`` (everything the report shows) and the equity curves.
    """
    span = make_span(ohlcv, agent_outputs.index[0], ohlcv.index[-1], config)
    prior = class_prior(labels.loc[: agent_outputs.index[0]].iloc[:-1])
    meta_out = meta_agents[choice["method"]].predict(agent_outputs)
    gate = choice["confidence_gate"]
    strategies = {
        "meta_agent": model_strategy(
            "meta_agent",
            meta_out,
            span,
            labels,
            config,
            gate=gate,
            pred_vol=meta_out["magnitude"] / ABS_PER_SIGMA,
        )
    }
    classification = {"meta_agent": classification_report(meta_out, labels, prior)}
    for reference in ("plain_average", "prior"):
        if reference in meta_agents and reference != choice["method"]:
            output = meta_agents[reference].predict(agent_outputs)
            classification[f"meta:{reference}"] = classification_report(output, labels, prior)
    agent_vol = agent_outputs.get(
        "volatility.pred_vol", pd.Series(np.nan, index=agent_outputs.index)
    )
    for agent in direction_agents(agent_outputs.columns):
        output = method_columns(agent_outputs, agent)
        strategies[f"agent:{agent}"] = model_strategy(
            f"agent:{agent}", output, span, labels, config, gate=gate, pred_vol=agent_vol
        )
        classification[f"agent:{agent}"] = classification_report(output, labels, prior)
    for name, target in baseline_targets(span, config).items():
        strategies[f"baseline:{name}"] = run_strategy(
            f"baseline:{name}", target, span, config, risk_limits=name != "buy_and_hold"
        )
    # every distinct configuration tried counts as a trial: identical return streams (the
    # prior under each confidence gate, an agent that fell back to the prior alone) are one
    # draw of luck, as PBO counts them
    distinct = np.unique(selection_returns.to_numpy(dtype=np.float64), axis=1).shape[1]
    n_trials = distinct + len(strategies) + tuning_trials
    ppy = span.periods_per_year
    stats = honest_statistics(strategies["meta_agent"], n_trials, selection_returns, config, ppy)
    regimes = (
        regime_breakdown(
            strategies["meta_agent"], meta_out["regime"], labels, meta_out, REGIMES, ppy
        )
        if meta_out["regime"].notna().any()
        else []
    )
    evaluation = {
        "disclaimer": DISCLAIMER,
        "test_span": {
            "start": str(span.bars.index[0]),
            "end": str(span.bars.index[-1]),
            "bars": len(span.bars),
            "bars_with_model_output": int(meta_out.index.isin(span.bars.index).sum()),
            "bars_per_year": ppy,
        },
        "meta_selection": choice,
        "strategies": {k: s.metrics for k, s in strategies.items()},
        "decision_reasons": {k: s.reasons for k, s in strategies.items() if s.reasons},
        "classification": classification,
        "statistics": stats,
        "regimes": regimes,
        "costs": dataclasses.asdict(config.costs),
        "n_trials": n_trials,
        "n_configurations": len(selection_returns.columns) + len(strategies) + tuning_trials,
    }
    logger.info(
        "test span %s..%s (%d bars): meta Sharpe %.3f (deflated Sharpe %.3f, PBO %.2f), "
        "buy-and-hold Sharpe %.3f; meta decisions %s",
        span.bars.index[0],
        span.bars.index[-1],
        len(span.bars),
        strategies["meta_agent"].metrics["sharpe"],
        stats["dsr"],
        stats["pbo"],
        strategies["baseline:buy_and_hold"].metrics["sharpe"],
        strategies["meta_agent"].reasons,
    )
    curves = pd.DataFrame({k: s.equity for k, s in strategies.items()})
    curves.index.name = "timestamp"
    return evaluation, curves
