"""The decision layer, shared by the backtest and the live runner (one implementation).

From direction probabilities, confidence and disagreement to a signal in {-1, 0, 1}:
- adaptive thresholds: the buy (sell) threshold on P(up) (P(down)) moves down by
  ``adapt_step`` while rolling accuracy is above ``aggressive_above`` (0.6) and up while it
  is below ``conservative_below`` (0.45);
- gates: no trade when confidence < ``confidence_gate`` (0.6) or disagreement >
  ``disagreement_gate`` (0.4);
- kill switch: no trade while rolling accuracy < ``kill_below`` (0.4);
- where the model is unavailable (NaN): hold (signal NaN: no new entry, an open position
  kept) or, only when asked (an ``rsi`` is given), the RSI fallback: buy below RSI 30,
  sell above 70;
- no trade on an output that is the class prior (column ``informative`` = 0): a model
  with no edge over the trivial baseline does not trade.

Each bar's ``reason`` is the first rule that kept it from trading, in this order: model
unavailable (``model_unavailable``, or ``fallback_rsi`` when the fallback decides it),
``prior_only``, no probability past its threshold
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
    values = _rolling_accuracy(
        predicted.to_numpy(dtype=np.float64),
        realized.to_numpy(dtype=np.float64),
        window,
        min_obs,
    )
    return pd.Series(values, index=predicted.index)


def _rolling_accuracy(
    predicted: np.ndarray, realized: np.ndarray, window: int, min_obs: int
) -> np.ndarray:
    """:func:`rolling_accuracy` on arrays. Counts of 0/1 outcomes are whole numbers, so
    running sums of them are exact: the same values as a pandas rolling mean."""
    known = ~np.isnan(realized)
    correct = (known & (predicted == realized)).astype(np.float64)
    hits = np.concatenate([[0.0], np.cumsum(correct)])
    seen = np.concatenate([[0.0], np.cumsum(known.astype(np.float64))])
    end = np.arange(1, predicted.size + 1)
    start = np.maximum(end - window, 0)
    count = seen[end] - seen[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count >= max(min_obs, 1), (hits[end] - hits[start]) / count, np.nan)
    return np.concatenate([[np.nan], mean[:-1]])  # known at t+1: shifted one row


def rsi_fallback(rsi: pd.Series, config: DecisionConfig) -> pd.Series:
    """The model-free strategy: long when RSI is oversold, short (or flat) when overbought."""
    return pd.Series(_rsi_signal(rsi.to_numpy(dtype=np.float64), config), index=rsi.index)


def _rsi_signal(rsi: np.ndarray, config: DecisionConfig) -> np.ndarray:
    short = -1.0 if config.allow_short else 0.0
    with np.errstate(invalid="ignore"):
        return np.where(rsi < config.rsi_low, 1.0, np.where(rsi > config.rsi_high, short, 0.0))


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
        rsi: RSI per row: the fallback trades it where the model output is missing (without
            it those rows hold: signal NaN).

    Returns:
        Columns ``signal`` (-1, 0, 1), ``rolling_accuracy``, ``buy_threshold``,
        ``sell_threshold`` and ``reason`` (why the signal is what it is).
    """

    def column(name: str) -> np.ndarray | None:
        return frame[name].to_numpy(dtype=np.float64) if name in frame else None

    columns = decide_arrays(
        *(frame[k].to_numpy(dtype=np.float64) for k in ("down", "flat", "up", "confidence")),
        config,
        disagreement=column("disagreement"),
        informative=column("informative"),
        realized=None if realized is None else realized.reindex(frame.index).to_numpy(np.float64),
        rsi=None if rsi is None else rsi.reindex(frame.index).to_numpy(dtype=np.float64),
    )
    return pd.DataFrame(columns, index=frame.index)


def decide_arrays(
    down: np.ndarray,
    flat: np.ndarray,
    up: np.ndarray,
    confidence: np.ndarray,
    config: DecisionConfig,
    *,
    disagreement: np.ndarray | None = None,
    informative: np.ndarray | None = None,
    realized: np.ndarray | None = None,
    rsi: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """:func:`decide` on arrays (aligned rows; the live runner decides each candle with
    it): the same columns, by name."""
    n = len(down)
    probs = np.column_stack([down, flat, up])
    available = ~np.isnan(probs).any(axis=1) & ~np.isnan(confidence)
    predicted = np.where(available, probs.argmax(axis=1).astype(np.float64), np.nan)
    if realized is not None:
        acc = _rolling_accuracy(
            predicted, realized, config.accuracy_window, config.min_accuracy_obs
        )
    else:
        acc = np.full(n, np.nan)
    with np.errstate(invalid="ignore"):
        shift = np.where(
            acc > config.aggressive_above,
            -config.adapt_step,
            np.where(acc < config.conservative_below, config.adapt_step, 0.0),
        )
        buy_t = config.buy_threshold + shift
        sell_t = config.sell_threshold + shift
        raw = np.where(
            (up >= buy_t) & (up > down),
            1.0,
            np.where((down >= sell_t) & (down > up), -1.0 if config.allow_short else 0.0, 0.0),
        )
        if disagreement is None:
            disagreement = np.zeros(n)
        prior_only = informative == 0.0 if informative is not None else np.zeros(n, dtype=bool)
        gated_conf = confidence < config.confidence_gate
        gated_dis = disagreement > config.disagreement_gate
        killed = acc < config.kill_below
    signal = np.where(prior_only | gated_conf | gated_dis | killed, 0.0, raw)
    # a bar's reason is the first rule that kept it from trading; the kill switch and the
    # gates count only where the model would otherwise have traded, so a model that never
    # crosses a threshold reads "no_edge", not "kill_switch"
    reason = np.select(
        [~available, prior_only, raw == 0, killed, gated_conf, gated_dis],
        [
            "fallback_rsi" if rsi is not None else "model_unavailable",
            "prior_only",
            "no_edge",
            "kill_switch",
            "confidence_gate",
            "disagreement_gate",
        ],
        default="model",
    )
    if rsi is not None:
        signal = np.where(available, signal, _rsi_signal(rsi, config))
    else:
        signal = np.where(available, signal, np.nan)
    return {
        "signal": signal,
        "rolling_accuracy": acc,
        "buy_threshold": buy_t,
        "sell_threshold": sell_t,
        "reason": reason,
    }
