"""The decision layer: thresholds, gates, kill switch, RSI fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ai_trade_bot.strategy.decision import DecisionConfig, decide, rolling_accuracy


def _frame(rows: list[tuple[float, float, float, float, float]]) -> pd.DataFrame:
    idx = pd.date_range("2024-01-01", periods=len(rows), freq="1D", tz="UTC")
    return pd.DataFrame(
        rows, columns=["down", "flat", "up", "confidence", "disagreement"], index=idx
    )


def test_gates_and_thresholds_by_hand() -> None:
    frame = _frame(
        [
            (0.1, 0.2, 0.7, 0.8, 0.1),  # clear up, confident -> buy
            (0.6, 0.2, 0.2, 0.8, 0.1),  # clear down -> sell
            (0.1, 0.2, 0.7, 0.5, 0.1),  # below the confidence gate
            (0.1, 0.2, 0.7, 0.8, 0.5),  # agents disagree too much
            (0.3, 0.35, 0.35, 0.8, 0.1),  # up below the 0.40 threshold
            (np.nan, np.nan, np.nan, np.nan, np.nan),  # model unavailable, no RSI given
        ]
    )
    out = decide(frame, DecisionConfig())
    # without a model output and no fallback asked for: a hold (NaN), not a flat signal
    np.testing.assert_array_equal(out["signal"], [1.0, -1.0, 0.0, 0.0, 0.0, np.nan])
    assert out["reason"].tolist() == [
        "model",
        "model",
        "confidence_gate",
        "disagreement_gate",
        "no_edge",
        "model_unavailable",
    ]
    no_short = decide(frame, DecisionConfig(allow_short=False))
    assert no_short["signal"].iloc[1] == 0.0


def test_rolling_accuracy_lags_one_bar_and_moves_thresholds() -> None:
    predicted = pd.Series([2.0, 2.0, 0.0, 2.0])
    realized = pd.Series([2.0, 0.0, 0.0, np.nan])
    acc = rolling_accuracy(predicted, realized, window=3, min_obs=1)
    assert np.isnan(acc.iloc[0])  # nothing known before the first outcome
    assert acc.iloc[1] == 1.0 and acc.iloc[2] == 0.5 and acc.iloc[3] == 2 / 3
    # 4 correct ups in a row -> accuracy 1.0 > 0.6 -> the buy threshold drops by the step
    frame = _frame([(0.1, 0.2, 0.7, 0.9, 0.0)] * 6)
    realized = pd.Series(2.0, index=frame.index)
    config = DecisionConfig(accuracy_window=3, min_accuracy_obs=2)
    out = decide(frame, config, realized=realized)
    assert out["buy_threshold"].iloc[-1] == config.buy_threshold - config.adapt_step


def test_kill_switch_and_rsi_fallback() -> None:
    frame = _frame([(0.1, 0.2, 0.7, 0.9, 0.0)] * 6 + [(np.nan,) * 5] * 2)
    wrong = pd.Series(0.0, index=frame.index)  # every 'up' call was wrong
    rsi = pd.Series([50.0] * 6 + [20.0, 80.0], index=frame.index)
    out = decide(
        frame, DecisionConfig(accuracy_window=3, min_accuracy_obs=2), realized=wrong, rsi=rsi
    )
    assert out["reason"].iloc[4] == "kill_switch" and out["signal"].iloc[4] == 0.0
    assert out["signal"].iloc[6:].tolist() == [1.0, -1.0]  # oversold buy, overbought sell


def test_a_gate_is_a_reason_only_where_it_blocked_a_trade() -> None:
    """A model that never crosses a threshold reads no_edge, even with the kill switch on
    and confidence under its gate: the report must not blame the gates for it."""
    frame = _frame([(0.35, 0.4, 0.25, 0.3, 0.0)] * 6)
    wrong = pd.Series(0.0, index=frame.index)
    out = decide(frame, DecisionConfig(accuracy_window=3, min_accuracy_obs=2), realized=wrong)
    assert (out["rolling_accuracy"].iloc[3:] < DecisionConfig().kill_below).all()
    assert out["reason"].tolist() == ["no_edge"] * 6 and (out["signal"] == 0.0).all()
