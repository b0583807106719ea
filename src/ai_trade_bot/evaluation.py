"""Evaluation: strategies from model outputs, baselines, backtests and honest statistics."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, roc_auc_score

from ai_trade_bot.agents.regime import REGIMES
from ai_trade_bot.backtest.costs import CostConfig, SizingConfig
from ai_trade_bot.backtest.engine import EngineConfig, bar_length, run_backtest
from ai_trade_bot.backtest.metrics import periods_per_year, return_metrics, trade_metrics
from ai_trade_bot.backtest.signals import crossover_positions, rolling_mean
from ai_trade_bot.backtest.statistics import (
    block_bootstrap_ci,
    deflated_sharpe,
    probability_of_backtest_overfitting,
    sharpe_per_period,
)
from ai_trade_bot.calibration import log_loss_rows
from ai_trade_bot.config import parse_config
from ai_trade_bot.decision import DecisionConfig, rsi_fallback
from ai_trade_bot.features import indicators
from ai_trade_bot.meta import ABS_PER_SIGMA, direction_agents
from ai_trade_bot.scoring import class_prior, direction_scores
from ai_trade_bot.strategy.step import FallbackConfig, decide_targets

logger = logging.getLogger(__name__)

DISCLAIMER = (
    "Research software. Paper trade first. Past results, in a backtest or live, do not "
    "promise future ones. This is not financial advice."
)


@dataclass(frozen=True)
class EvaluateConfig:
    """``params:evaluate``, nested blocks parsed into their dataclasses
    (see :func:`parse_evaluate_config`)."""

    costs: CostConfig = field(default_factory=CostConfig)
    sizing: SizingConfig = field(default_factory=SizingConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    atr_length: int = 14
    rsi_length: int = 14
    sma_fast: int = 20
    sma_slow: int = 50
    confidence_gates: tuple[float, ...] = (0.0, 0.45, 0.5, 0.6)
    pbo_blocks: int = 10
    bootstrap: int = 1000
    seed: int = 0


NESTED_BLOCKS = {
    "costs": CostConfig,
    "sizing": SizingConfig,
    "engine": EngineConfig,
    "decision": DecisionConfig,
    "fallback": FallbackConfig,
}


def parse_evaluate_config(block: dict[str, Any]) -> EvaluateConfig:
    """``params:evaluate`` with every nested block parsed, so a misspelt key anywhere is a
    ConfigError naming it before any work starts."""
    block = dict(block or {})
    for key, cls in NESTED_BLOCKS.items():
        value = block.get(key)
        if not isinstance(value, cls):
            block[key] = parse_config(cls, value, name=f"evaluate.{key}")
    return parse_config(EvaluateConfig, block, name="evaluate")


@dataclass
class Strategy:
    """One evaluated strategy: its target positions and backtest."""

    name: str
    target: pd.Series
    equity: pd.Series
    returns: pd.Series
    metrics: dict[str, float]
    trades: pd.DataFrame
    reasons: dict[str, int] = field(default_factory=dict)  # decision reasons over the span


@dataclass(frozen=True)
class Span:
    """Every clean bar of an evaluated span, with what the strategies need per bar."""

    bars: pd.DataFrame  # open, high, low, close
    atr: np.ndarray
    rsi: pd.Series
    periods_per_year: float  # from the whole history: the data's own calendar
    bar: pd.Timedelta  # the timeframe (the risk clamp's day is the next bar's expected day)


def atr_and_rsi(ohlcv: pd.DataFrame, config: EvaluateConfig) -> tuple[np.ndarray, np.ndarray]:
    """pandas-ta's ATR and RSI of the candles with the configured lengths: the backtest's
    and the live runner's stops, slippage and fallback read these same values."""
    high, low, close = (ohlcv[k].to_numpy(dtype=np.float64) for k in ("high", "low", "close"))
    return (
        indicators.atr(high, low, close, config.atr_length),
        indicators.rsi(close, config.rsi_length),
    )


def make_span(
    ohlcv: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, config: EvaluateConfig
) -> Span:
    """All clean candles from ``start`` to ``end``; indicators from the full history (so the
    first bars of the span are not warm-up)."""
    atr, rsi = (pd.Series(x, index=ohlcv.index) for x in atr_and_rsi(ohlcv, config))
    bars = ohlcv.loc[start:end, ["open", "high", "low", "close"]]
    return Span(
        bars,
        atr.reindex(bars.index).bfill().to_numpy(),
        rsi.reindex(bars.index),
        periods_per_year(ohlcv.index),
        bar_length(ohlcv.index),
    )


def run_strategy(
    name: str,
    target: pd.Series,
    span: Span,
    config: EvaluateConfig,
    *,
    risk_limits: bool = True,
    reasons: dict[str, int] | None = None,
) -> Strategy:
    """Backtest a target series with the configured costs and engine.

    ``risk_limits=False`` keeps the costs but drops the drawdown, daily-loss and trade-count
    limits: the market reference (buy-and-hold) must not be reshaped by our risk rules.
    """
    engine = config.engine
    if not risk_limits:
        engine = EngineConfig(
            initial_cash=engine.initial_cash,
            max_position=1.0,
            max_exposure=1.0,
            dd_reduce_start=1.0,
            dd_reduce_end=1.0,
        )
    bars = span.bars
    result = run_backtest(
        bars,
        target.reindex(bars.index).to_numpy(),
        engine,
        fee=config.costs.fee(),
        slip=config.costs.slip(span.atr / bars["close"].to_numpy()),
        atr=span.atr,
        bar=span.bar,
    )
    metrics = return_metrics(result.equity, span.periods_per_year) | trade_metrics(
        result, span.periods_per_year
    )
    return Strategy(
        name, target, result.equity, result.returns, metrics, result.trades, reasons or {}
    )


def model_strategy(
    name: str,
    output: pd.DataFrame,
    span: Span,
    labels: pd.Series,
    config: EvaluateConfig,
    *,
    gate: float,
    pred_vol: pd.Series | None = None,
) -> Strategy:
    """A model's output traded through the strategy step on every bar of the span.

    A bar without a complete model output is a bar with no model signal: it holds (no new
    entry; an open position keeps its stops and targets), exactly as the live runner does
    without ``--fallback``; it is never removed from the price path. Half-Kelly sizes by
    the output's confidence, vol-target by ``pred_vol``.
    """
    frame = output.reindex(span.bars.index)
    vol = None if pred_vol is None else pred_vol.reindex(span.bars.index).to_numpy()
    decided = decide_targets(
        {k: frame[k].to_numpy(dtype=np.float64) for k in frame.columns},
        decision=config.decision,
        sizing=config.sizing,
        fallback=config.fallback,
        gate=gate,
        realized=labels.reindex(frame.index).to_numpy(dtype=np.float64),
        pred_vol=vol if vol is not None else np.full(len(frame), np.nan),
    )
    target = pd.Series(decided["target"], index=frame.index)
    counts = pd.Series(decided["reason"]).value_counts()
    return run_strategy(name, target, span, config, reasons={k: int(v) for k, v in counts.items()})


def baseline_targets(span: Span, config: EvaluateConfig) -> dict[str, pd.Series]:
    """Buy-and-hold, an SMA crossover (long/flat, fixed windows) and the RSI fallback (at
    ``fallback.max_position``, the most the runner's ``--fallback rsi`` trades)."""
    bars, rsi = span.bars, span.rsi
    close = bars["close"].to_numpy(np.float64)
    sma = crossover_positions(
        rolling_mean(close, config.sma_fast), rolling_mean(close, config.sma_slow), 1.0
    )
    return {
        "buy_and_hold": pd.Series(1.0, index=bars.index),
        f"sma_{config.sma_fast}_{config.sma_slow}": pd.Series(sma, index=bars.index),
        "rsi_fallback": rsi_fallback(rsi, config.decision).fillna(0.0)
        * config.fallback.max_position,
    }


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
) -> dict[str, Any]:
    """PSR/DSR of the chosen strategy, PBO of the selection, bootstrap Sharpe interval."""
    r = strategy.returns.to_numpy()
    ppy = periods_per_year(strategy.returns.index) if ppy is None else ppy
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


def method_columns(frame: pd.DataFrame, method: str) -> pd.DataFrame:
    """``<method>.<output>`` columns of a wide frame, without the prefix."""
    out = frame[[c for c in frame.columns if c.startswith(f"{method}.")]]
    return out.rename(columns=lambda c: c[len(method) + 1 :])


def _log_loss(output: pd.DataFrame, labels: pd.Series) -> float:
    probs = output[["down", "flat", "up"]].to_numpy(dtype=np.float64)
    return log_loss_rows(labels.reindex(output.index).to_numpy().astype(int), probs)


def select_meta(
    meta_oof: pd.DataFrame, labels: pd.Series, ohlcv: pd.DataFrame, config: EvaluateConfig
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Choose the meta method and confidence gate on the meta out-of-sample rows only.

    The method is the one with the lowest log-loss among those whose log-loss beats the
    class prior's (``prior``, which never trades, when none does); its gate is the one
    with the best backtest Sharpe on every clean bar of those rows. Every (method, gate)
    is backtested: their returns are the configurations tried (for PBO and the deflated
    Sharpe).

    Returns:
        The choice (with the log-losses behind it) and the candidates' per-bar returns.
    """
    span = make_span(ohlcv, meta_oof.index[0], meta_oof.index[-1], config)
    methods = sorted({c.split(".")[0] for c in meta_oof.columns})
    losses = {m: _log_loss(method_columns(meta_oof, m), labels) for m in methods}
    prior_loss = losses.get("prior")
    if prior_loss is None:
        raise ValueError("meta out-of-fold predictions lack the 'prior' method; re-run train")
    eligible = [m for m in methods if m != "prior" and losses[m] < prior_loss]
    method = min(eligible, key=losses.__getitem__) if eligible else "prior"
    returns, sharpes = {}, {}
    for candidate in methods:
        output = method_columns(meta_oof, candidate)
        for gate in config.confidence_gates:
            strat = model_strategy(
                f"{candidate}@{gate}",
                output,
                span,
                labels,
                config,
                gate=gate,
                pred_vol=output["magnitude"] / ABS_PER_SIGMA,
            )
            returns[strat.name] = strat.returns
            sharpes[strat.name] = strat.metrics["sharpe"]
    gate = max(config.confidence_gates, key=lambda g: sharpes[f"{method}@{g}"])
    why = (
        f"lowest validation log-loss ({losses[method]:.4f}) of the {len(eligible)} method(s) "
        f"that beat the class prior's ({prior_loss:.4f})"
        if eligible
        else f"no method beat the class prior's validation log-loss ({prior_loss:.4f}): the "
        "strategy trades the prior, which never trades"
    )
    logger.info(
        "meta selection on %d validation bars: %s with gate %s (%s)",
        len(span.bars),
        method,
        gate,
        why,
    )
    choice = {
        "method": method,
        "confidence_gate": float(gate),
        "reason": why,
        "validation_log_loss": losses,
        "prior_log_loss": prior_loss,
        "eligible": eligible,
        "validation_sharpe": sharpes[f"{method}@{gate}"],
        "candidates": sharpes,
        "validation_start": str(span.bars.index[0]),
        "validation_end": str(span.bars.index[-1]),
        "validation_bars": len(span.bars),
    }
    return choice, pd.DataFrame(returns)


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
    n_trials = len(selection_returns.columns) + len(strategies) + tuning_trials
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
