"""The prediction ledger: every agent's and the meta-agent's direction forecast, stored
with the candle it was made on and its target time, and scored when that candle closes.

A prediction made at candle t with label horizon h targets the candle h bars later. When
that candle has closed, the realised direction label (the same
:func:`ai_trade_bot.features.labels.label_arrays` the training labels and the runner's
rolling accuracy use) scores it: hit or miss (the arg-max class, ties to the first, as
:func:`ai_trade_bot.strategy.decision.decide_arrays` reads it), log-loss (probabilities
clipped at :data:`ai_trade_bot.modeling.scoring.EPS`) and the realised log return against
the expected one. The store writes predictions and scores in the candle's one
transaction (:meth:`ai_trade_bot.live.store.StateStore.commit_step`).

:func:`ledger_health` turns the scored rows into the rolling live figures per symbol and
agent: accuracy, log-loss, calibration (mean confidence in the predicted class against
the hit rate, and a reliability table), the expected against the realised return, and the
prediction drift against the out-of-fold class shares the bundle carries. The dashboard,
``ai-trade-bot ledger`` and the drift rules read these figures; the kill switch and the
adaptive thresholds read the same hits (a test holds them equal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.modeling.scoring import EPS, oof_reference  # noqa: F401 (re-exported)

META = "meta"
LEDGER_COLUMNS = (
    "symbol", "ts", "agent", "target_ts", "horizon", "model_version", "down", "flat", "up",
    "confidence", "expected_return", "outcome", "realised_return", "hit", "log_loss",
    "scored_ts",
)  # fmt: skip


@dataclass(frozen=True)
class Prediction:
    """One agent's direction forecast at one candle (``agent`` ``meta``: the meta-agent)."""

    agent: str
    down: float | None
    flat: float | None
    up: float | None
    confidence: float | None
    expected_return: float | None


@dataclass(frozen=True)
class Outcome:
    """What happened to the predictions made at candle ``ts``: the realised direction label
    (0 down, 1 flat, 2 up) and log return over the horizon, known at candle ``scored_ts``."""

    ts: int
    outcome: int
    realised_return: float
    scored_ts: int


def _num(value: Any) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None


def predictions_of(outputs: pd.DataFrame | None) -> list[Prediction]:
    """This candle's forecasts from a one-row output frame (``<agent>.<field>`` columns):
    every agent with direction probabilities, then the meta-agent."""
    if outputs is None:
        return []
    values = dict(zip(outputs.columns, outputs.to_numpy(dtype=np.float64)[0], strict=True))
    agents = [c[: -len(".up")] for c in outputs.columns if str(c).endswith(".up")]
    agents = [a for a in agents if a != META] + ([META] if f"{META}.up" in values else [])
    return [
        Prediction(
            agent,
            *(_num(values[f"{agent}.{k}"]) for k in ("down", "flat", "up")),
            _num(values.get(f"{agent}.confidence", np.nan)),
            _num(values.get(f"{agent}.expected_return", np.nan)),
        )
        for agent in agents
    ]


def outcomes_known(
    candle_times: np.ndarray,
    closes: np.ndarray,
    times: np.ndarray,
    realized: np.ndarray,
    horizon: int,
    after: int | None,
) -> list[Outcome]:
    """Outcomes that became known: the decided candles ``times`` (int64 ns) later than
    ``after`` whose ``realized`` label is known, with the log return from their close to
    the close ``horizon`` candles on (``candle_times``/``closes``: the trailing window)."""
    found = []
    for ts, label in zip(times, realized, strict=True):
        if not np.isfinite(label) or (after is not None and ts <= after):
            continue
        pos = int(np.searchsorted(candle_times, ts))
        if pos + horizon >= len(candle_times) or candle_times[pos] != ts:
            continue
        ret = float(np.log(closes[pos + horizon] / closes[pos]))
        found.append(Outcome(int(ts), int(label), ret, int(candle_times[pos + horizon])))
    return found


def score(probs: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hit (arg-max class, ties to the first) and log-loss of rows of ``probs`` (n, 3)."""
    probs = np.asarray(probs, dtype=np.float64)
    outcome = np.asarray(outcome).astype(int)
    hit = probs.argmax(axis=1) == outcome
    picked = probs[np.arange(len(outcome)), outcome]
    return hit, -np.log(np.clip(picked, EPS, 1.0))


# -- the rolling live figures -------------------------------------------------------------
def ledger_health(
    ledger: pd.DataFrame,
    window: int = 200,
    *,
    reference: dict[str, dict[str, Any]] | None = None,
    bins: int = 5,
) -> list[dict[str, Any]]:
    """Per symbol and agent, over the last ``window`` scored predictions: accuracy,
    log-loss, the mean confidence in the predicted class against the hit rate
    (``overconfidence``: their difference) and a reliability table (``bins`` bins of that
    confidence), mean expected and realised return, the predicted-class shares and, with
    ``reference`` (the bundle's out-of-fold figures per agent), the out-of-fold accuracy and
    log-loss beside the live ones and the prediction drift (total-variation distance
    between the live and out-of-fold predicted-class shares). Unscored predictions count in
    ``pending``."""
    out: list[dict[str, Any]] = []
    if ledger.empty:
        return out
    for (symbol, agent), rows in ledger.groupby(["symbol", "agent"], sort=True):
        rows = rows.sort_values("ts")
        scored = rows[rows["outcome"].notna() & rows["up"].notna()].tail(window)
        probs = scored[["down", "flat", "up"]].to_numpy(dtype=np.float64)
        record: dict[str, Any] = {
            "symbol": symbol,
            "agent": agent,
            "predictions": len(rows),
            "pending": int(rows["outcome"].isna().sum()),
            "scored": len(scored),
            "window": int(window),
            "last_ts": int(rows["ts"].iloc[-1]),
        }
        if len(scored):
            hit = scored["hit"].to_numpy(dtype=np.float64)
            top = probs.max(axis=1)
            predicted = probs.argmax(axis=1)
            shares = np.bincount(predicted, minlength=3) / len(predicted)
            edges = np.linspace(1.0 / 3.0, 1.0, bins + 1)
            which = np.clip(np.searchsorted(edges, top, side="right") - 1, 0, bins - 1)
            record |= {
                "accuracy": float(hit.mean()),
                "log_loss": float(scored["log_loss"].mean()),
                "confidence": float(top.mean()),
                "overconfidence": float(top.mean() - hit.mean()),
                "reliability": [
                    {
                        "low": float(edges[b]),
                        "high": float(edges[b + 1]),
                        "n": int((which == b).sum()),
                        "confidence": float(top[which == b].mean()) if (which == b).any() else None,
                        "hit_rate": float(hit[which == b].mean()) if (which == b).any() else None,
                    }
                    for b in range(bins)
                ],
                "predicted_shares": shares.tolist(),
                "expected_return": _mean(scored["expected_return"]),
                "realised_return": _mean(scored["realised_return"]),
            }
            ref = (reference or {}).get(agent)
            if ref:
                record |= {
                    "oof_accuracy": ref.get("accuracy"),
                    "oof_log_loss": ref.get("log_loss"),
                    "oof_rows": ref.get("rows"),
                }
                if ref.get("predicted_shares") is not None:
                    record["prediction_drift"] = float(
                        0.5 * np.abs(shares - np.asarray(ref["predicted_shares"])).sum()
                    )
        out.append(record)
    return out


def _mean(values: pd.Series) -> float | None:
    known = values.dropna()
    return float(known.mean()) if len(known) else None
