"""Strategies on a span: model outputs through the strategy step and the baselines, each
backtested with the same costs and limits."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ai_trade_bot.backtest.engine import EngineConfig, bar_length, run_backtest
from ai_trade_bot.backtest.metrics import periods_per_year, return_metrics, trade_metrics
from ai_trade_bot.backtest.signals import crossover_positions, rolling_mean
from ai_trade_bot.evaluation.settings import EvaluateConfig
from ai_trade_bot.strategy.config import StrategyConfig
from ai_trade_bot.strategy.decision import rsi_fallback
from ai_trade_bot.strategy.step import atr_and_rsi, decide_targets

logger = logging.getLogger(__name__)


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


def make_span(
    ohlcv: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, config: StrategyConfig
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
    config: StrategyConfig,
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


def strategy_targets(
    output: pd.DataFrame,
    span: Span,
    labels: pd.Series,
    config: StrategyConfig,
    *,
    gate: float,
    pred_vol: pd.Series | None = None,
) -> tuple[pd.Series, dict[str, int]]:
    """A model's output through the strategy step on every bar of the span: the target
    fractions and how often each decision reason fired.

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
    counts = pd.Series(decided["reason"]).value_counts()
    target = pd.Series(decided["target"], index=frame.index)
    return target, {k: int(v) for k, v in counts.items()}


def model_strategy(
    name: str,
    output: pd.DataFrame,
    span: Span,
    labels: pd.Series,
    config: StrategyConfig,
    *,
    gate: float,
    pred_vol: pd.Series | None = None,
) -> Strategy:
    """A model's output traded through the strategy step on every bar of the span
    (:func:`strategy_targets`), backtested."""
    target, reasons = strategy_targets(output, span, labels, config, gate=gate, pred_vol=pred_vol)
    return run_strategy(name, target, span, config, reasons=reasons)


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


def method_columns(frame: pd.DataFrame, method: str) -> pd.DataFrame:
    """``<method>.<output>`` columns of a wide frame, without the prefix."""
    out = frame[[c for c in frame.columns if c.startswith(f"{method}.")]]
    return out.rename(columns=lambda c: c[len(method) + 1 :])
