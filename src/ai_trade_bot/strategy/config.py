"""The trading settings every strategy is run with, in the backtest and live.

:class:`StrategyConfig` is what a bundle carries and what the live runner trades with: the
costs, the sizing, the execution and risk settings, the decision layer and the fallback,
and the indicator lengths the market state is measured with. ``params:evaluate`` holds it
beside what only evaluation uses (:class:`ai_trade_bot.evaluation.settings.EvaluateConfig`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ai_trade_bot.backtest.costs import CostConfig, SizingConfig
from ai_trade_bot.backtest.engine import EngineConfig, check_legacy_engine_keys
from ai_trade_bot.config import parse_config
from ai_trade_bot.strategy.decision import DecisionConfig
from ai_trade_bot.strategy.step import FallbackConfig


@dataclass(frozen=True)
class StrategyConfig:
    """Costs, sizing, execution and risk, the decision layer, the fallback and the
    indicator lengths (``params:evaluate``, the keys a strategy trades with)."""

    costs: CostConfig = field(default_factory=CostConfig)
    sizing: SizingConfig = field(default_factory=SizingConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    atr_length: int = 14
    rsi_length: int = 14


NESTED_BLOCKS = {
    "costs": CostConfig,
    "sizing": SizingConfig,
    "engine": EngineConfig,
    "decision": DecisionConfig,
    "fallback": FallbackConfig,
}


def parse_nested[T](cls: type[T], block: dict[str, Any] | None, *, name: str) -> T:
    """``cls`` from ``block`` with every nested block parsed, so a misspelt key anywhere is
    a ConfigError naming it before any work starts."""
    block = dict(block or {})
    for key, nested in NESTED_BLOCKS.items():
        value = block.get(key)
        if key == "engine" and isinstance(value, dict):
            check_legacy_engine_keys(value, name=f"{name}.engine")
        if not isinstance(value, nested):
            block[key] = parse_config(nested, value, name=f"{name}.{key}")
    return parse_config(cls, block, name=name)


def parse_strategy_config(block: dict[str, Any] | None) -> StrategyConfig:
    """A :class:`StrategyConfig` from its own keys (a bundle's record)."""
    return parse_nested(StrategyConfig, block, name="strategy")


def strategy_of(config: StrategyConfig) -> StrategyConfig:
    """The strategy settings of ``config`` (an ``EvaluateConfig`` holds more)."""
    names = (f.name for f in dataclasses.fields(StrategyConfig))
    return StrategyConfig(**{name: getattr(config, name) for name in names})
