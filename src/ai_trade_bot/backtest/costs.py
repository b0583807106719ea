"""Transaction costs and position sizing (shared by the backtest and the live runner)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CostConfig:
    """``params:evaluate.costs``: basis points, optionally slippage scaled by volatility."""

    fee_bps: float = 10.0
    spread_bps: float = 2.0
    slippage_bps: float = 2.0
    slippage_vol_mult: float = 0.0  # > 0: slippage = mult * (ATR / close) instead of bps

    def fee(self) -> float:
        """One-way fee as a fraction of notional."""
        return self.fee_bps / 1e4

    def slip(self, atr_over_close: np.ndarray | None = None) -> np.ndarray | float:
        """Half the spread plus slippage, as a fraction of price (per bar if vol-scaled)."""
        half_spread = self.spread_bps / 2e4
        if self.slippage_vol_mult > 0:
            if atr_over_close is None:
                raise ValueError("volatility-scaled slippage needs ATR / close per bar")
            return half_spread + self.slippage_vol_mult * np.nan_to_num(atr_over_close)
        return half_spread + self.slippage_bps / 1e4


@dataclass(frozen=True)
class SizingConfig:
    """``params:evaluate.sizing``."""

    method: str = "fixed"  # fixed | half_kelly | vol_target
    fraction: float = 1.0  # fixed fractional size
    kelly_cap: float = 0.10  # the design documents' conservative bound
    payoff: float = 1.0  # average win / average loss assumed for Kelly
    target_vol: float = 0.01  # per-bar volatility target
    max_fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in {"fixed", "half_kelly", "vol_target"}:
            raise ValueError(f"method must be fixed, half_kelly or vol_target, got {self.method!r}")


def size_positions(
    direction: np.ndarray,
    config: SizingConfig,
    *,
    p_win: np.ndarray | None = None,
    pred_vol: np.ndarray | None = None,
) -> np.ndarray:
    """Signed target fractions from directions in {-1, 0, 1}.

    - fixed: ``fraction``.
    - half_kelly: half of ``p - (1 - p) / payoff`` with p the win probability, in
      [0, kelly_cap].
    - vol_target: ``target_vol / pred_vol``, at most ``max_fraction``.
    """
    d = np.asarray(direction, dtype=np.float64)
    if config.method == "fixed":
        size = np.full(d.shape, config.fraction)
    elif config.method == "half_kelly":
        if p_win is None:
            raise ValueError("half_kelly sizing needs p_win")
        kelly = p_win - (1.0 - p_win) / config.payoff
        size = np.clip(0.5 * kelly, 0.0, config.kelly_cap)
    else:
        if pred_vol is None:
            raise ValueError("vol_target sizing needs pred_vol")
        size = config.target_vol / np.where(pred_vol > 0, pred_vol, np.inf)
    return d * np.clip(np.nan_to_num(size), 0.0, config.max_fraction)
