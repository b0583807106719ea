"""The runner's settings: ``params:live`` and what the command line gives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ai_trade_bot.config import parse_config
from ai_trade_bot.strategy.config import StrategyConfig


@dataclass(frozen=True)
class LiveConfig:
    """``params:live`` (conf/base/parameters_live.yml, conf/local over it): what the live
    command adds to a bundle's own settings. The command line overrides each key."""

    max_order_notional: float | None = None  # quote currency; required with --live
    fallback: str = "none"  # none | rsi: what trades where no model output is usable
    symbol_map: dict[str, str] = field(default_factory=dict)  # model symbol -> market
    api_hosts: list[str] = field(default_factory=list)  # Host names the API answers too
    bar_timeout: float = 60.0  # a universe book: seconds to wait for a late symbol's candle
    # seconds the features, agents and meta-agent may take on one candle; a slower model
    # falls back for that candle (an alert), null: no limit
    inference_timeout: float | None = None
    memory_cap_mb: float | None = None  # resident memory above this: an alert, a clean stop
    inference: str = "onnx"  # onnx: the networks on ONNX Runtime (torch if absent); torch
    notify: dict[str, Any] = field(default_factory=dict)  # ai_trade_bot.live.notify.NotifyConfig

    def __post_init__(self) -> None:
        if self.inference not in ("onnx", "torch"):
            raise ValueError(f"live.inference must be onnx or torch, got {self.inference!r}")
        if self.fallback not in ("none", "rsi"):
            raise ValueError(f"fallback must be none or rsi, got {self.fallback!r}")
        for name in ("inference_timeout", "memory_cap_mb"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"live.{name} must be > 0 or null, got {value}")
        if self.max_order_notional is not None and not self.max_order_notional > 0:
            raise ValueError(
                f"max_order_notional must be > 0 (quote currency) or null, got "
                f"{self.max_order_notional}"
            )

    @classmethod
    def parse(cls, block: dict[str, Any] | None) -> LiveConfig:
        return parse_config(cls, block, name="live")


@dataclass
class RunnerConfig:
    """How the runner runs (from the command line)."""

    symbol: str
    timeframe: str
    mode: str = "paper"  # paper | live
    reload_check_seconds: float = 30.0
    settings: StrategyConfig | None = None  # costs, limits and fallback without a model
    # candles of history to start from (None: all the feed has). Features that depend on
    # all history (GARCH, drawdown) are those of the candles the runner has seen.
    history_rows: int | None = None
    use_fallback: bool = False  # trade the RSI fallback where no model output is usable
    allow_ungated_live: bool = False  # with mode 'live': trade the fallback without a model
    symbol_map: dict[str, str] = field(default_factory=dict)  # model symbol -> feed symbol
    max_order_notional: float | None = None  # quote currency; tightens the bundle's cap
    max_consecutive_errors: int = 5
    inference_timeout: float | None = None  # seconds (see LiveConfig)
    memory_cap_mb: float | None = None
    daily_summary: bool = True  # an alert at the first candle of each UTC day
    # the networks' runtime: torch (float64, the backtest's very outputs) or onnx (ONNX
    # Runtime, within 1e-5 of torch; the command's default, live.inference)
    inference: str = "torch"
