"""The decision layer, shared by the backtest and the live runner (one implementation).

From direction probabilities, confidence and disagreement to a signal in {-1, 0, 1}:
- adaptive thresholds: the buy (sell) threshold on P(up) (P(down)) moves down by
  ``adapt_step`` while rolling accuracy is above ``aggressive_above`` (0.6) and up while it
  is below ``conservative_below`` (0.45);
- gates: no trade when confidence < ``confidence_gate`` (0.6) or disagreement >
  ``disagreement_gate`` (0.4);
- kill switch: no trade while rolling accuracy < ``kill_below`` (0.4);
- RSI fallback: where the models are unavailable (NaN), buy below RSI 30, sell above 70;
- no trade on an output that is the class prior (column ``informative`` = 0): a model
  with no edge over the trivial baseline does not trade.

Each bar's ``reason`` is the first rule that kept it from trading, in this order: model
unavailable (``fallback_rsi``), ``prior_only``, no probability past its threshold
(``no_edge``), ``kill_switch``, ``confidence_gate``, ``disagreement_gate``; ``model`` when
it trades. The kill switch and the gates are counted only where they blocked a trade.

Rolling accuracy at bar t uses only predictions whose outcome was known by t's close.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class DecisionConfig:
    """``params:evaluate.decision``."""

    buy_threshold: float = 0.40
    sell_threshold: float = 0.40
    adapt_step: float = 0.05
    aggressive_above: float = 0.60
    conservative_below: float = 0.45
    accuracy_window: int = 50
    min_accuracy_obs: int = 20
    confidence_gate: float = 0.60
    disagreement_gate: float = 0.40
    kill_below: float = 0.40
    allow_short: bool = True
    rsi_low: float = 30.0
    rsi_high: float = 70.0


def rolling_accuracy(
    predicted: pd.Series, realized: pd.Series, window: int, min_obs: int
) -> pd.Series:
    """Share of correct predictions among the last ``window`` whose outcome is known.

    The prediction at t is resolved by the label at t (known at t+1's close), so the value
    at t averages outcomes up to t-1.
    """
    correct = (predicted == realized).astype(float).where(realized.notna())
    return correct.rolling(window, min_periods=min_obs).mean().shift(1)


def rsi_fallback(rsi: pd.Series, config: DecisionConfig) -> pd.Series:
    """The model-free strategy: long when RSI is oversold, short (or flat) when overbought."""
    short = -1.0 if config.allow_short else 0.0
    return pd.Series(
        np.where(rsi < config.rsi_low, 1.0, np.where(rsi > config.rsi_high, short, 0.0)),
        index=rsi.index,
    )


def decide(
    frame: pd.DataFrame,
    config: DecisionConfig,
    *,
    realized: pd.Series | None = None,
    rsi: pd.Series | None = None,
) -> pd.DataFrame:
    """Signals for every row of ``frame``.

    Args:
        frame: Columns ``down, flat, up`` and ``confidence``; optional ``disagreement`` and
            ``informative``.
        config: Thresholds and gates.
        realized: True direction labels (0/1/2) for the rolling accuracy (NaN where unknown).
        rsi: RSI per row, used where the model output is missing.

    Returns:
        Columns ``signal`` (-1, 0, 1), ``rolling_accuracy``, ``buy_threshold``,
        ``sell_threshold`` and ``reason`` (why the signal is what it is).
    """
    probs = frame[["down", "flat", "up"]]
    available = probs.notna().all(axis=1) & frame["confidence"].notna()
    predicted = probs.to_numpy().argmax(axis=1).astype(float)
    predicted = pd.Series(np.where(available, predicted, np.nan), index=frame.index)
    if realized is not None:
        acc = rolling_accuracy(
            predicted,
            realized.reindex(frame.index),
            config.accuracy_window,
            config.min_accuracy_obs,
        )
    else:
        acc = pd.Series(np.nan, index=frame.index)
    shift = np.where(
        acc > config.aggressive_above,
        -config.adapt_step,
        np.where(acc < config.conservative_below, config.adapt_step, 0.0),
    )
    buy_t = config.buy_threshold + shift
    sell_t = config.sell_threshold + shift
    up, down = frame["up"].to_numpy(), frame["down"].to_numpy()
    raw = np.where(
        (up >= buy_t) & (up > down),
        1.0,
        np.where((down >= sell_t) & (down > up), -1.0 if config.allow_short else 0.0, 0.0),
    )
    disagreement = (
        frame["disagreement"] if "disagreement" in frame else pd.Series(0.0, index=frame.index)
    )
    prior_only = (
        (frame["informative"] == 0.0).to_numpy()
        if "informative" in frame
        else np.zeros(len(frame), dtype=bool)
    )
    gated_conf = frame["confidence"].to_numpy() < config.confidence_gate
    gated_dis = disagreement.to_numpy() > config.disagreement_gate
    killed = (acc < config.kill_below).to_numpy()
    signal = np.where(prior_only | gated_conf | gated_dis | killed, 0.0, raw)
    # a bar's reason is the first rule that kept it from trading; the kill switch and the
    # gates count only where the model would otherwise have traded, so a model that never
    # crosses a threshold reads "no_edge", not "kill_switch"
    reason = np.select(
        [~available.to_numpy(), prior_only, raw == 0, killed, gated_conf, gated_dis],
        [
            "fallback_rsi",
            "prior_only",
            "no_edge",
            "kill_switch",
            "confidence_gate",
            "disagreement_gate",
        ],
        default="model",
    )
    if rsi is not None:
        fallback = rsi_fallback(rsi.reindex(frame.index), config).to_numpy()
        signal = np.where(available.to_numpy(), signal, fallback)
    else:
        signal = np.where(available.to_numpy(), signal, 0.0)
    return pd.DataFrame(
        {
            "signal": signal,
            "rolling_accuracy": acc,
            "buy_threshold": buy_t,
            "sell_threshold": sell_t,
            "reason": reason,
        },
        index=frame.index,
    )
