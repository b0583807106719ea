"""Nodes of the evaluate pipeline."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pandas_ta as ta

from ai_trade_bot.agents import Agent
from ai_trade_bot.agents.regime import REGIMES
from ai_trade_bot.config import parse_config
from ai_trade_bot.evaluation import (
    DISCLAIMER,
    EvaluateConfig,
    baseline_targets,
    classification_report,
    honest_statistics,
    regime_breakdown,
    run_strategy,
    signals_for,
    targets_from_signals,
)
from ai_trade_bot.meta import ABS_PER_SIGMA, MetaAgent, direction_agents
from ai_trade_bot.model_selection import WalkForwardConfig, holdout_start
from ai_trade_bot.scoring import class_prior
from ai_trade_bot.training import predict_rows

logger = logging.getLogger(__name__)


def _bars(ohlcv_clean: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    return ohlcv_clean.loc[index, ["open", "high", "low", "close"]]


def _atr(ohlcv_clean: pd.DataFrame, index: pd.Index, length: int) -> np.ndarray:
    atr = ta.atr(ohlcv_clean["high"], ohlcv_clean["low"], ohlcv_clean["close"], length=length)
    return atr.reindex(index).bfill().to_numpy()


def predict_test_span(
    model_input: pd.DataFrame, walk_forward: dict[str, Any], *models: Agent
) -> pd.DataFrame:
    """The deployment models' outputs on the held-out test span (evaluated once)."""
    config = parse_config(WalkForwardConfig, walk_forward, name="train.walk_forward")
    rows = np.arange(holdout_start(len(model_input), config), len(model_input))
    parts = [predict_rows(m, model_input, rows).add_prefix(f"{m.name}.") for m in models]
    return pd.concat(parts, axis=1)


def _model_targets(
    signal: pd.Series, output: pd.DataFrame, config: EvaluateConfig, pred_vol: pd.Series
) -> pd.Series:
    """Position targets of a model's signals; every sizing method gets what it needs
    (the model's confidence as P(win) for half-Kelly, a volatility forecast for vol-target)."""
    return targets_from_signals(signal, config, p_win=output["confidence"], pred_vol=pred_vol)


def _meta_columns(frame: pd.DataFrame, method: str) -> pd.DataFrame:
    out = frame[[c for c in frame.columns if c.startswith(f"{method}.")]]
    return out.rename(columns=lambda c: c[len(method) + 1 :])


def select_meta_config(
    meta_oof_predictions: pd.DataFrame,
    model_labels: pd.DataFrame,
    ohlcv_clean: pd.DataFrame,
    evaluate: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Backtest every (meta method, confidence gate) on the meta out-of-sample rows and
    pick the best Sharpe. Returns the choice and the candidates' per-bar returns (for PBO).
    """
    config = parse_config(EvaluateConfig, evaluate, name="evaluate")
    index = meta_oof_predictions.index
    bars = _bars(ohlcv_clean, index)
    atr = _atr(ohlcv_clean, index, config.atr_length)
    labels = model_labels["direction"]
    methods = sorted({c.split(".")[0] for c in meta_oof_predictions.columns})
    returns, sharpes = {}, {}
    for method in methods:
        output = _meta_columns(meta_oof_predictions, method)
        for gate in config.confidence_gates:
            signal = signals_for(output, labels, config, gate=gate)["signal"]
            strat = run_strategy(
                f"{method}@{gate}",
                _model_targets(signal, output, config, output["magnitude"] / ABS_PER_SIGMA),
                bars,
                config,
                atr,
            )
            returns[strat.name] = strat.returns
            sharpes[strat.name] = strat.metrics["sharpe"]
    best = max(sharpes, key=lambda k: sharpes[k])
    method, gate = best.split("@")
    logger.info(
        "meta selection on %d validation bars: %s (Sharpe %.3f of %d candidates)",
        len(index),
        best,
        sharpes[best],
        len(sharpes),
    )
    choice = {
        "method": method,
        "confidence_gate": float(gate),
        "validation_sharpe": sharpes[best],
        "candidates": sharpes,
        "validation_start": str(index[0]),
        "validation_end": str(index[-1]),
    }
    return choice, pd.DataFrame(returns)


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
    """Backtest the chosen meta-agent, every single agent and the baselines on the test
    span with the same costs, and compute the honest statistics.

    Returns:
        ``evaluation`` (everything the report shows) and ``equity_curves`` (per strategy).
    """
    config = parse_config(EvaluateConfig, evaluate, name="evaluate")
    index = test_agent_outputs.index
    bars = _bars(ohlcv_clean, index)
    atr = _atr(ohlcv_clean, index, config.atr_length)
    labels = model_labels["direction"]
    prior = class_prior(labels.loc[: index[0]].iloc[:-1])
    meta = meta_agents[meta_selection["method"]]
    meta_out = meta.predict(test_agent_outputs)
    gate = meta_selection["confidence_gate"]
    strategies = {}
    meta_signal = signals_for(meta_out, labels, config, gate=gate)
    strategies["meta_agent"] = run_strategy(
        "meta_agent",
        _model_targets(
            meta_signal["signal"], meta_out, config, meta_out["magnitude"] / ABS_PER_SIGMA
        ),
        bars,
        config,
        atr,
    )
    classification = {"meta_agent": classification_report(meta_out, labels, prior)}
    agent_vol = test_agent_outputs.get(
        "volatility.pred_vol", pd.Series(np.nan, index=test_agent_outputs.index)
    )
    for agent in direction_agents(test_agent_outputs.columns):
        output = _meta_columns(test_agent_outputs, agent)
        signal = signals_for(output, labels, config, gate=gate)["signal"]
        strategies[f"agent:{agent}"] = run_strategy(
            f"agent:{agent}",
            _model_targets(signal, output, config, agent_vol),
            bars,
            config,
            atr,
        )
        classification[f"agent:{agent}"] = classification_report(output, labels, prior)
    for name, target in baseline_targets(bars, config).items():
        strategies[f"baseline:{name}"] = run_strategy(
            f"baseline:{name}", target, bars, config, atr, risk_limits=name != "buy_and_hold"
        )
    n_trials = (
        len(selection_returns.columns)
        + len(strategies)
        + int(sum(s.get("n_trials", 0) for s in tune_summaries.values()))
    )
    stats = honest_statistics(strategies["meta_agent"], n_trials, selection_returns, config)
    regimes = (
        regime_breakdown(strategies["meta_agent"], meta_out["regime"], labels, meta_out, REGIMES)
        if meta_out["regime"].notna().any()
        else []
    )
    evaluation = {
        "disclaimer": DISCLAIMER,
        "test_span": {"start": str(index[0]), "end": str(index[-1]), "bars": len(index)},
        "meta_selection": meta_selection,
        "strategies": {k: s.metrics for k, s in strategies.items()},
        "classification": classification,
        "statistics": stats,
        "regimes": regimes,
        "costs": config.costs,
        "n_trials": n_trials,
    }
    logger.info(
        "test span %s..%s: meta Sharpe %.3f (deflated Sharpe %.3f, PBO %.2f), "
        "buy-and-hold Sharpe %.3f",
        index[0],
        index[-1],
        strategies["meta_agent"].metrics["sharpe"],
        stats["dsr"],
        stats["pbo"],
        strategies["baseline:buy_and_hold"].metrics["sharpe"],
    )
    curves = pd.DataFrame({k: s.equity for k, s in strategies.items()})
    curves.index.name = "timestamp"
    return evaluation, curves


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
