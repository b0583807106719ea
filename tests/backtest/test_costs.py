"""Costs and sizing by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ai_trade_bot.backtest.costs import CostConfig, SizingConfig, size_positions
from ai_trade_bot.config import parse_config
from ai_trade_bot.errors import ConfigError


def test_costs_in_basis_points_and_scaled_by_volatility() -> None:
    fixed = CostConfig(fee_bps=10, spread_bps=4, slippage_bps=3)
    assert fixed.fee() == pytest.approx(0.001)
    assert fixed.slip() == pytest.approx(0.0002 + 0.0003)
    scaled = CostConfig(spread_bps=0, slippage_vol_mult=0.1)
    np.testing.assert_allclose(scaled.slip(np.array([0.02, 0.01])), [0.002, 0.001])
    with pytest.raises(ValueError, match="needs ATR / close"):
        scaled.slip()


def test_half_kelly_is_capped_at_ten_percent_and_vol_targeting_scales() -> None:
    direction = np.array([1.0, -1.0, 1.0, 0.0])
    p_win = np.array([0.55, 0.55, 0.9, 0.9])
    kelly = size_positions(direction, SizingConfig(method="half_kelly"), p_win=p_win)
    # full Kelly p - (1 - p) / b: 0.10 -> half 0.05; 0.8 -> half 0.4 -> capped at 0.10
    np.testing.assert_allclose(kelly, [0.05, -0.05, 0.10, 0.0])
    losing = size_positions(
        np.array([1.0]), SizingConfig(method="half_kelly"), p_win=np.array([0.4])
    )
    assert losing[0] == 0.0
    vol = size_positions(
        direction,
        SizingConfig(method="vol_target", target_vol=0.01, max_fraction=1.5),
        pred_vol=np.array([0.02, 0.005, 0.01, 0.01]),
    )
    np.testing.assert_allclose(vol, [0.5, -1.5, 1.0, 0.0])
    with pytest.raises(ConfigError, match="method must be fixed, half_kelly or vol_target"):
        parse_config(SizingConfig, {"method": "martingale"}, name="evaluate.sizing")
