"""The strategy step: one function from model outputs to targets, for evaluate and live."""

from __future__ import annotations

import numpy as np

from ai_trade_bot.backtest.costs import SizingConfig
from ai_trade_bot.strategy.decision import DecisionConfig
from ai_trade_bot.strategy.step import FallbackConfig, decide_targets

ROWS = {  # confident up; no model output (twice); flat
    "down": np.array([0.1, np.nan, np.nan, 0.3]),
    "flat": np.array([0.2, np.nan, np.nan, 0.4]),
    "up": np.array([0.7, np.nan, np.nan, 0.3]),
    "confidence": np.array([0.9, np.nan, np.nan, 0.9]),
}
RSI = np.array([50.0, 20.0, 80.0, 50.0])


def _step(**kwargs):
    return decide_targets(
        ROWS,
        decision=DecisionConfig(),
        sizing=SizingConfig(method="fixed", fraction=0.8),
        fallback=FallbackConfig(max_position=0.05),
        rsi=RSI,
        **kwargs,
    )


def test_rows_without_a_model_output_hold_unless_the_fallback_is_asked_for() -> None:
    held = _step()
    np.testing.assert_array_equal(held["target"], [0.8, np.nan, np.nan, 0.0])
    assert list(held["reason"]) == ["model", "model_unavailable", "model_unavailable", "no_edge"]
    asked = _step(use_fallback=True)
    # oversold buys, overbought sells, at the fallback's own small size whatever the sizing
    np.testing.assert_array_equal(asked["target"], [0.8, 0.05, -0.05, 0.0])
    assert list(asked["reason"][1:3]) == ["fallback_rsi", "fallback_rsi"]
