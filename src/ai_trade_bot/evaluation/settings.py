"""``params:evaluate``: the strategy settings and what only evaluation uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ai_trade_bot.strategy.config import StrategyConfig, parse_nested

DISCLAIMER = (
    "Research software. Paper trade first. Past results, in a backtest or live, do not "
    "promise future ones. This is not financial advice."
)


@dataclass(frozen=True)
class EvaluateConfig(StrategyConfig):
    """``params:evaluate``: :class:`StrategyConfig` and the baselines, the confidence gates
    tried on validation rows, and the statistics' settings."""

    sma_fast: int = 20
    sma_slow: int = 50
    confidence_gates: tuple[float, ...] = (0.0, 0.45, 0.5, 0.6)
    pbo_blocks: int = 10
    bootstrap: int = 1000
    seed: int = 0


def parse_evaluate_config(block: dict[str, Any] | None) -> EvaluateConfig:
    """``params:evaluate`` with every nested block parsed, so a misspelt key anywhere is a
    ConfigError naming it before any work starts."""
    return parse_nested(EvaluateConfig, block, name="evaluate")
