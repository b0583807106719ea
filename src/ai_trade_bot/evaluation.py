"""Evaluation: strategies from model outputs, baselines, backtests and honest statistics."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandas_ta as ta
from sklearn.metrics import confusion_matrix, roc_auc_score

from ai_trade_bot.backtest.costs import CostConfig, SizingConfig, size_positions
from ai_trade_bot.backtest.engine import EngineConfig, run_backtest
from ai_trade_bot.backtest.metrics import periods_per_year, return_metrics, trade_metrics
from ai_trade_bot.backtest.signals import crossover_positions, rolling_mean
from ai_trade_bot.backtest.statistics import (
    block_bootstrap_ci,
    deflated_sharpe,
    probability_of_backtest_overfitting,
    sharpe_per_period,
)
from ai_trade_bot.decision import DecisionConfig, decide, rsi_fallback
from ai_trade_bot.scoring import direction_scores

logger = logging.getLogger(__name__)

DISCLAIMER = (
    "Research software. Paper trade first. Past results, in a backtest or live, do not "
    "promise future ones. This is not financial advice."
)


@dataclass(frozen=True)
class EvaluateConfig:
    """``params:evaluate``."""

    costs: dict[str, Any] = field(default_factory=dict)
    sizing: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    atr_length: int = 14
    sma_fast: int = 20
    sma_slow: int = 50
    confidence_gates: tuple[float, ...] = (0.0, 0.45, 0.5, 0.6)
    pbo_blocks: int = 10
    bootstrap: int = 1000
    seed: int = 0


@dataclass
class Strategy:
    """One evaluated strategy: its target positions and backtest."""

    name: str
    target: pd.Series
    equity: pd.Series
    returns: pd.Series
    metrics: dict[str, float]
    trades: pd.DataFrame


def _engine(config: EvaluateConfig) -> EngineConfig:
    return EngineConfig(**config.engine)


def run_strategy(
    name: str,
    target: pd.Series,
    bars: pd.DataFrame,
    config: EvaluateConfig,
    atr: np.ndarray,
    *,
    risk_limits: bool = True,
) -> Strategy:
    """Backtest a target series with the configured costs and engine.

    ``risk_limits=False`` keeps the costs but drops the drawdown, daily-loss and trade-count
    limits: the market reference (buy-and-hold) must not be reshaped by our risk rules.
    """
    costs = CostConfig(**config.costs)
    engine = _engine(config)
    if not risk_limits:
        engine = EngineConfig(
            initial_cash=engine.initial_cash,
            max_position=1.0,
            max_exposure=1.0,
            dd_reduce_start=1.0,
            dd_reduce_end=1.0,
        )
    result = run_backtest(
        bars,
        target.to_numpy(),
        engine,
        fee=costs.fee(),
        slip=costs.slip(atr / bars["close"].to_numpy()),
        atr=atr,
    )
    ppy = periods_per_year(bars.index)
    metrics = return_metrics(result.equity, ppy) | trade_metrics(result)
    return Strategy(name, target, result.equity, result.returns, metrics, result.trades)


def targets_from_signals(
    signal: pd.Series,
    config: EvaluateConfig,
    *,
    p_win: pd.Series | None = None,
    pred_vol: pd.Series | None = None,
) -> pd.Series:
    """Signed position fractions from {-1, 0, 1} signals with the configured sizing."""
    sizing = SizingConfig(**config.sizing)
    size = size_positions(
        signal.to_numpy(),
        sizing,
        p_win=None if p_win is None else p_win.to_numpy(),
        pred_vol=None if pred_vol is None else pred_vol.to_numpy(),
    )
    return pd.Series(size, index=signal.index)


def baseline_targets(bars: pd.DataFrame, config: EvaluateConfig) -> dict[str, pd.Series]:
    """Buy-and-hold, an SMA crossover (long/flat, fixed windows) and the RSI fallback."""
    close = bars["close"].to_numpy(np.float64)
    sma = crossover_positions(
        rolling_mean(close, config.sma_fast), rolling_mean(close, config.sma_slow), 1.0
    )
    rsi = ta.rsi(bars["close"], length=14)
    decision = DecisionConfig(**config.decision)
    return {
        "buy_and_hold": pd.Series(1.0, index=bars.index),
        f"sma_{config.sma_fast}_{config.sma_slow}": pd.Series(sma, index=bars.index),
        "rsi_fallback": rsi_fallback(rsi, decision).fillna(0.0),
    }


def signals_for(
    output: pd.DataFrame, labels: pd.Series, config: EvaluateConfig, gate: float | None = None
) -> pd.DataFrame:
    """Decision-layer signals for one model output (agent or meta)."""
    decision = DecisionConfig(**config.decision)
    if gate is not None:
        decision = DecisionConfig(**{**config.decision, "confidence_gate": gate})
    return decide(output, decision, realized=labels)


def classification_report(
    output: pd.DataFrame, labels: pd.Series, prior: np.ndarray
) -> dict[str, Any]:
    """Accuracy (with a block-bootstrap interval and the chance level), per-class
    precision/recall/F1, log-loss, Brier, one-vs-rest AUC, confusion matrix, calibration."""
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
        "precision": dict(zip(("down", "flat", "up"), precision.tolist(), strict=True)),
        "recall": dict(zip(("down", "flat", "up"), recall.tolist(), strict=True)),
        "f1": dict(zip(("down", "flat", "up"), f1.tolist(), strict=True)),
        "auc": aucs,
        "confusion_matrix": cm.tolist(),
        "calibration_up": calibration,
    }


def honest_statistics(
    strategy: Strategy, n_trials: int, trial_returns: pd.DataFrame, config: EvaluateConfig
) -> dict[str, Any]:
    """PSR/DSR of the chosen strategy, PBO of the selection, bootstrap Sharpe interval."""
    r = strategy.returns.to_numpy()
    ppy = periods_per_year(strategy.returns.index)
    trial_sr = np.array(
        [sharpe_per_period(trial_returns[c].to_numpy()) for c in trial_returns.columns]
    )
    dsr = deflated_sharpe(r, n_trials, trial_sr)
    lo, hi = block_bootstrap_ci(
        r, lambda x: sharpe_per_period(x) * np.sqrt(ppy), n_boot=config.bootstrap, seed=config.seed
    )
    pbo = (
        probability_of_backtest_overfitting(trial_returns.to_numpy(), config.pbo_blocks)
        if trial_returns.shape[1] >= 2
        else {"pbo": float("nan")}
    )
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
) -> list[dict[str, Any]]:
    """Return, Sharpe and hit rate of a strategy within each predicted regime."""
    rows = []
    ppy = periods_per_year(strategy.returns.index)
    aligned = regime.reindex(strategy.returns.index)
    pred = output[["down", "flat", "up"]].to_numpy().argmax(axis=1)
    hit = pd.Series(pred == labels.reindex(output.index).to_numpy(), index=output.index)
    for k, name in enumerate(names):
        mask = aligned == k
        if not mask.any():
            continue
        r = strategy.returns[mask].to_numpy()
        rows.append(
            {
                "regime": name,
                "bars": int(mask.sum()),
                "mean_return": float(r.mean()),
                "sharpe_annual": sharpe_per_period(r) * np.sqrt(ppy),
                "accuracy": float(hit[mask.reindex(hit.index, fill_value=False)].mean()),
            }
        )
    return rows
