"""Why a decision is what it is: the rule with its numbers, the expected return, a risk
score and the agents that moved the meta-agent most.

Every decision the runner commits carries these fields (:class:`ai_trade_bot.live.store.Decision`);
the status API, the dashboard and ``ai-trade-bot ledger`` read the same stored record.

- ``rule``: the decision rule that decided the signal (the reason
  :func:`ai_trade_bot.strategy.decision.decide_arrays` gives) with the numbers it compared,
  e.g. ``model: up 0.46 >= buy 0.40``; what came after it (a flatten, halted entries, the
  risk clamp) stays in ``reason``.
- ``expected_return``: the meta-agent's expected log return over the horizon
  ((P(up) - P(down)) x the expected absolute move of the volatility forecast).
- ``risk_score``: |target| x the volatility forecast, the share of equity a one-sigma
  move of the position takes; ``stop_sigmas``: the stop's distance from the close in
  forecast sigmas (below 1, an ordinary bar can reach it).
- ``contributions``: each agent's push on the edge P(up) - P(down), by occlusion
  (:meth:`ai_trade_bot.modeling.meta.MetaAgent.contributions`), the largest first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ai_trade_bot.backtest.state import S_STOP, S_UNITS
from ai_trade_bot.modeling.meta import ABS_PER_SIGMA
from ai_trade_bot.strategy.config import StrategyConfig

TOP_AGENTS = 3  # contributions the dashboard lists first


def rule_text(decided: dict[str, np.ndarray], meta: dict[str, float], rsi: float,
              settings: StrategyConfig, gate: float | None) -> str:  # fmt: skip
    """The last row's rule with the numbers it compared (see the module docstring)."""
    reason = str(decided["reason"][-1])
    decision = settings.decision
    acc = float(decided["rolling_accuracy"][-1])
    buy, sell = float(decided["buy_threshold"][-1]), float(decided["sell_threshold"][-1])
    up, down = meta.get("up", np.nan), meta.get("down", np.nan)
    signal = float(decided["signal"][-1])
    if reason == "model":
        side = (
            f"up {up:.3f} >= buy {buy:.3f}" if signal > 0 else f"down {down:.3f} >= sell {sell:.3f}"
        )
        return f"model: {side}" + (f" (rolling accuracy {acc:.2f})" if np.isfinite(acc) else "")
    if reason == "no_edge":
        return f"no_edge: up {up:.3f} < buy {buy:.3f} and down {down:.3f} < sell {sell:.3f}"
    if reason == "kill_switch":
        return f"kill_switch: rolling accuracy {acc:.3f} < kill {decision.kill_below:.2f}"
    if reason == "confidence_gate":
        level = decision.confidence_gate if gate is None else gate
        confidence = meta.get("confidence", np.nan)
        return f"confidence_gate: confidence {confidence:.3f} < gate {level:.2f}"
    if reason == "disagreement_gate":
        return (
            f"disagreement_gate: disagreement {meta.get('disagreement', np.nan):.3f} > "
            f"{decision.disagreement_gate:.2f}"
        )
    if reason == "prior_only":
        return "prior_only: the meta-agent outputs its class prior (no edge to trade)"
    if reason == "fallback_rsi":
        return (
            f"fallback_rsi: RSI {rsi:.1f} (long < {decision.rsi_low:g}, short > "
            f"{decision.rsi_high:g})"
        )
    return f"{reason}: no usable model output"


def stop_distance(engine: np.ndarray, close: float, atr: float, settings: StrategyConfig) -> float:
    """The risk to the stop as a fraction of the close: the open position's stop, or the
    configured one for a new entry (NaN without a stop), as the portfolio clamp reads it."""
    config = settings.engine
    stop = float(engine[S_STOP])
    if not close > 0:
        return np.nan
    if float(engine[S_UNITS]) != 0.0 and np.isfinite(stop):
        return abs(close - stop) / close
    if config.stop == "percent":
        return float(config.stop_value)
    if config.stop == "atr" and atr > 0:
        return float(config.stop_value) * atr / close
    return np.nan


def risk_fields(target: float, sigma: float, distance: float) -> tuple[float | None, float | None]:
    """(risk score, stop distance in sigmas); None where a figure is unknown."""
    if not (np.isfinite(sigma) and sigma > 0):
        return None, None
    score = abs(target) * sigma if np.isfinite(target) else None
    sigmas = distance / sigma if np.isfinite(distance) else None
    return score, sigmas


def forecast_sigma(outputs_row: dict[str, float]) -> float:
    """The volatility forecast of this candle: the volatility agent's, else the meta-agent's
    expected absolute move over sqrt(2/pi)."""
    sigma = outputs_row.get("volatility.pred_vol", np.nan)
    if not np.isfinite(sigma):
        sigma = outputs_row.get("meta.magnitude", np.nan) / ABS_PER_SIGMA
    return float(sigma)


def top_contributions(contributions: dict[str, float], n: int | None = None) -> dict[str, float]:
    """Contributions by absolute size, the largest first (the first ``n``)."""
    ordered = sorted(contributions.items(), key=lambda kv: -abs(kv[1]))
    return {k: round(v, 6) for k, v in ordered[:n]}


def explanation(decision: dict[str, Any]) -> dict[str, Any]:
    """The explanation fields of a stored decision row (JSON columns parsed)."""
    import json

    contributions = decision.get("contributions")
    if isinstance(contributions, str):
        contributions = json.loads(contributions or "{}")
    return {
        "rule": decision.get("rule"),
        "reason": decision.get("reason"),
        "expected_return": decision.get("expected_return"),
        "risk_score": decision.get("risk_score"),
        "stop_sigmas": decision.get("stop_sigmas"),
        "contributions": contributions or {},
    }
