"""The strategy step: model outputs plus market state to target positions.

One function, :func:`decide_targets`, turns the meta-agent's (or any direction agent's)
outputs, the RSI and the recent decisions' outcomes into a signal, a reason and a signed
target fraction of equity: the decision layer (thresholds, gates, kill switch), then the
sizing. ``evaluate`` backtests it over a span and the live runner calls it per candle, on
the same arrays; nothing else computes a target. It works on aligned arrays, so a vector of
symbols at one time can pass through it as well as one symbol over time.

Rows without a complete model output hold (target NaN: no new entry, an open position
kept with its stops and targets) unless the RSI fallback is asked for, which then trades
at most ``fallback.max_position``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ai_trade_bot.backtest.costs import SizingConfig, size_positions
from ai_trade_bot.features import indicators
from ai_trade_bot.modeling.meta import ABS_PER_SIGMA
from ai_trade_bot.strategy.decision import DecisionConfig, decide_arrays

if TYPE_CHECKING:
    from ai_trade_bot.strategy.config import StrategyConfig

# the direction outputs a strategy reads (the meta-agent's and each direction agent's)
DIRECTION = ("down", "flat", "up", "confidence", "disagreement", "informative", "magnitude")


@dataclass(frozen=True)
class FallbackConfig:
    """``params:evaluate.fallback``: the model-free RSI strategy, traded only when asked
    (``ai-trade-bot live --fallback rsi``) and never above ``max_position``."""

    max_position: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_position <= 1.0:
            raise ValueError(f"max_position must be in [0, 1], got {self.max_position}")


def decision_settings(config: DecisionConfig, gate: float | None = None) -> DecisionConfig:
    """The decision layer's settings, with the confidence ``gate`` chosen by evaluate."""
    if gate is None:
        return config
    return dataclasses.replace(config, confidence_gate=gate)


def decide_targets(
    outputs: Mapping[str, np.ndarray],
    *,
    decision: DecisionConfig,
    sizing: SizingConfig,
    fallback: FallbackConfig,
    gate: float | None = None,
    realized: np.ndarray | None = None,
    rsi: np.ndarray | None = None,
    use_fallback: bool = False,
    pred_vol: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Signals, reasons and target fractions for aligned rows of model outputs.

    Args:
        outputs: ``down, flat, up, confidence`` and optionally ``disagreement``,
            ``informative`` and ``magnitude`` (NaN where the model gave no output).
        decision, sizing, fallback: The decision layer, sizing and fallback settings.
        gate: The confidence gate chosen on validation rows (default: the decision's).
        realized: True direction labels per row (NaN unknown), for the rolling accuracy.
        rsi: RSI per row: what the fallback trades on.
        use_fallback: Trade the RSI fallback on rows without a model output; otherwise
            they hold.
        pred_vol: Forecast volatility per row for ``vol_target`` sizing (default: the
            output's ``magnitude`` as a sigma).

    Returns:
        The decision layer's columns (``signal``, ``reason``, ...) and ``target``.
    """

    def column(name: str) -> np.ndarray | None:
        value = outputs.get(name)
        return None if value is None else np.asarray(value, dtype=np.float64)

    confidence = column("confidence")
    decided = decide_arrays(
        column("down"),
        column("flat"),
        column("up"),
        confidence,
        decision_settings(decision, gate),
        disagreement=column("disagreement"),
        informative=column("informative"),
        realized=realized,
        rsi=rsi if use_fallback else None,
    )
    if pred_vol is None and column("magnitude") is not None:
        pred_vol = column("magnitude") / ABS_PER_SIGMA
    target = size_positions(decided["signal"], sizing, p_win=confidence, pred_vol=pred_vol)
    on_fallback = decided["reason"] == "fallback_rsi"
    if on_fallback.any():  # the fallback's own size, whatever the sizing method
        target = np.where(on_fallback, decided["signal"] * fallback.max_position, target)
    return decided | {"target": target}


def atr_and_rsi(ohlcv: pd.DataFrame, config: StrategyConfig) -> tuple[np.ndarray, np.ndarray]:
    """pandas-ta's ATR and RSI of the candles with the configured lengths: the backtest's
    and the live runner's stops, slippage and fallback read these same values."""
    high, low, close = (ohlcv[k].to_numpy(dtype=np.float64) for k in ("high", "low", "close"))
    return (
        indicators.atr(high, low, close, config.atr_length),
        indicators.rsi(close, config.rsi_length),
    )
