"""Monitoring: data and prediction drift (Evidently), performance rules, retrain decision.

- **Drift**: the reference is the deployed bundle's training window, the current data the
  latest ``current_rows`` candles (from the ingested data or from the live runner's state).
  One Evidently report covers the features and the agents' and meta-agent's outputs
  (``pred:<agent>.<output>``). The statistical test is fixed per column type in config,
  because Evidently otherwise switches tests with the sample size.
- **Performance rules** (from the design documents) over a monitoring window of the
  runner's recorded decisions, or the evaluate span when no runner has run: accuracy below
  ``min_accuracy``, drawdown above ``max_drawdown`` or Sharpe below ``min_sharpe``.
- **Retrain**: drift above ``drift_share`` or any broken rule, with every reason and the
  figures behind it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.backtest.metrics import (
    equity_returns,
    max_drawdown,
    periods_per_year,
    sharpe,
)
from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.live.model import same_symbol
from ai_trade_bot.live.store import StateReader

PREFIX = "pred:"


@dataclass(frozen=True)
class RuleConfig:
    """``params:drift.rules``; ``null`` switches a rule off."""

    min_accuracy: float | None = 0.5
    max_drawdown: float | None = 0.15
    min_sharpe: float | None = 0.5
    monitoring_rows: int = 500


@dataclass(frozen=True)
class DriftConfig:
    """``params:drift``."""

    current_source: str = "ingested"  # ingested | runner
    state_path: str = "data/09_live/state.db"
    symbol: str | None = None  # the runner's symbol to read (default: the one it trades)
    current_rows: int = 500
    num_method: str = "ks"
    num_threshold: float = 0.05
    cat_method: str = "chisquare"
    cat_threshold: float = 0.05
    drift_share: float = 0.3
    rules: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.current_source not in ("ingested", "runner"):
            raise ValueError(
                f"current_source must be 'ingested' or 'runner', got {self.current_source!r}"
            )
        if self.current_rows < 30:
            raise ValueError(f"current_rows must be >= 30, got {self.current_rows}")
        if not 0 < self.drift_share <= 1:
            raise ValueError(f"drift_share must be in (0, 1], got {self.drift_share}")


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig
) -> tuple[str, dict[str, Any]]:
    """Evidently's data drift report of ``current`` against ``reference`` (same columns).

    Returns:
        The HTML (self-contained, from ``get_html_str``) and a JSON-able summary: the tests
        used, the drifted columns, and the drift share of features and of predictions.
    """
    from evidently import Report
    from evidently.presets import DataDriftPreset

    columns = [c for c in reference.columns if c in current.columns]
    if not columns:
        raise DataValidationError("drift: reference and current data share no column")
    preset = DataDriftPreset(
        columns=columns,
        num_method=config.num_method,
        num_threshold=config.num_threshold,
        cat_method=config.cat_method,
        cat_threshold=config.cat_threshold,
        drift_share=config.drift_share,
    )
    snapshot = Report([preset], include_tests=True).run(current[columns], reference[columns])
    result = snapshot.dict()
    drifted, scores = [], {}
    for test in result["tests"]:
        params = test["metric_config"]["params"]
        if params.get("type", "").endswith("ValueDrift"):
            column = params["column"]
            if str(test["status"]).endswith("FAIL"):
                drifted.append(column)
    for metric in result["metrics"]:
        params = metric["config"]
        if params.get("type", "").endswith("ValueDrift"):
            scores[params["column"]] = float(metric["value"])
    features = [c for c in columns if not c.startswith(PREFIX)]
    predictions = [c for c in columns if c.startswith(PREFIX)]
    summary = {
        "method": {
            "numerical": config.num_method,
            "numerical_threshold": config.num_threshold,
            "categorical": config.cat_method,
            "categorical_threshold": config.cat_threshold,
        },
        "reference": _span(reference),
        "current": _span(current),
        "n_columns": len(columns),
        "drift_share": len(drifted) / len(columns),
        "feature_drift_share": _share(drifted, features),
        "prediction_drift_share": _share(drifted, predictions),
        "drifted_columns": sorted(drifted),
        "scores": scores,
        "dataset_drift": _share(drifted, features) > config.drift_share,
    }
    return snapshot.get_html_str(as_iframe=False), summary


def _share(drifted: list[str], columns: list[str]) -> float:
    return len(set(drifted) & set(columns)) / len(columns) if columns else 0.0


def _span(frame: pd.DataFrame) -> dict[str, Any]:
    return {"start": str(frame.index[0]), "end": str(frame.index[-1]), "rows": len(frame)}


def prediction_columns(outputs: pd.DataFrame) -> pd.DataFrame:
    """Agent and meta outputs as numeric ``pred:`` columns (the regime label is dropped:
    its probabilities carry it)."""
    keep = [c for c in outputs.columns if not c.endswith(".regime")]
    return outputs[keep].add_prefix(PREFIX).astype("float64")


# -- the current data from the live runner's state --------------------------------------
def runner_symbol(reader: StateReader, wanted: str | None, model_symbol: str) -> str:
    """The symbol whose runner state drift reads: ``drift.symbol`` when set, else the one
    the state file holds, else the one trading the model's symbol."""
    symbols = reader.symbols()
    if wanted is not None:
        if wanted not in symbols:
            raise DataValidationError(
                f"drift: drift.symbol={wanted!r} but {reader.path} holds {symbols}"
            )
        return wanted
    if len(symbols) == 1:
        return symbols[0]
    matching = [s for s in symbols if same_symbol(s, model_symbol)]
    if len(matching) != 1:
        raise DataValidationError(
            f"drift: {reader.path} holds {symbols}; set drift.symbol to the one to read"
        )
    return matching[0]


def runner_current(
    state_path: str | Path, feature_columns: list[str], rows: int, *, symbol: str | None = None,
    model_symbol: str = "",
) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The latest ``rows`` feature rows and outputs one symbol's runner recorded."""
    path = Path(state_path)
    if not path.exists():
        raise DataValidationError(f"drift: no runner state at {path} (drift.state_path)")
    reader = StateReader(path)
    try:
        name = runner_symbol(reader, symbol, model_symbol)
        frame = reader.feature_rows(name, feature_columns, rows)
        decisions = reader.decision_frame(name, rows)
    finally:
        reader.close()
    outputs = []
    for ts, row in decisions.iterrows():
        record = {f"meta.{k}": row[k] for k in ("down", "flat", "up", "confidence", "disagreement")}
        for agent, vote in json.loads(row["votes"] or "{}").items():
            record |= {f"{agent}.{k}": v for k, v in vote.items()}
        outputs.append(pd.Series(record, name=ts))
    return frame, pd.DataFrame(outputs).astype("float64")


# -- performance rules ----------------------------------------------------------------------
def performance_from_runner(
    state_path: str | Path,
    labels: pd.Series,
    rows: int,
    *,
    symbol: str | None = None,
    model_symbol: str = "",
) -> dict[str, Any] | None:
    """Accuracy, drawdown and Sharpe of one symbol's runner over its last ``rows``
    decisions, or None when it has recorded none. Realized directions come from
    ``labels`` (the ingested candles)."""
    path = Path(state_path)
    if not path.exists():
        return None
    reader = StateReader(path)
    try:
        if not reader.symbols():
            return None
        name = runner_symbol(reader, symbol, model_symbol)
        decisions = reader.decision_frame(name, rows)
        equity = reader.equity_frame(name, rows)
    finally:
        reader.close()
    if decisions.empty:
        return None
    known = decisions[["down", "flat", "up"]].dropna()
    truth = labels.reindex(known.index)
    scored = truth.notna()
    predicted = known.to_numpy(dtype=np.float64).argmax(axis=1)
    accuracy = float(np.mean(predicted[scored.to_numpy()] == truth[scored].to_numpy()))
    ppy = periods_per_year(equity.index)
    return {
        "source": f"runner:{path} ({name})",
        "window": _span(decisions),
        "accuracy": accuracy if scored.any() else float("nan"),
        "scored_rows": int(scored.sum()),
        "max_drawdown": max_drawdown(equity),
        "sharpe": sharpe(equity_returns(equity), ppy),
    }


def performance_from_evaluation(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The rules' figures for the evaluate test span (when no runner has run)."""
    meta = evaluation["strategies"]["meta_agent"]
    return {
        "source": "evaluate test span",
        "window": evaluation["test_span"],
        "accuracy": float(evaluation["classification"]["meta_agent"]["accuracy"]),
        "max_drawdown": float(meta["max_drawdown"]),
        "sharpe": float(meta["sharpe"]),
    }


def retrain_decision(
    drift: dict[str, Any], performance: dict[str, Any], config: DriftConfig, rules: RuleConfig
) -> dict[str, Any]:
    """Whether to retrain, with every reason and the figures behind it."""
    reasons = []
    share = drift["feature_drift_share"]
    if share > config.drift_share:
        reasons.append(
            {
                "rule": "data_drift",
                "value": share,
                "threshold": config.drift_share,
                "detail": f"{len(drift['drifted_columns'])} drifted columns, e.g. "
                f"{drift['drifted_columns'][:5]}",
            }
        )
    checks = (  # (rule, figure, threshold, broken when the figure is below the threshold)
        ("accuracy", "accuracy", rules.min_accuracy, True),
        ("drawdown", "max_drawdown", rules.max_drawdown, False),
        ("sharpe", "sharpe", rules.min_sharpe, True),
    )
    for rule, figure, threshold, below in checks:
        if threshold is None:
            continue
        value = performance[figure]
        if value < threshold if below else value > threshold:
            reasons.append({"rule": rule, "value": value, "threshold": threshold})
    return {
        "retrain": bool(reasons),
        "reasons": reasons,
        "performance": performance,
        "drift": {
            k: drift[k]
            for k in ("feature_drift_share", "prediction_drift_share", "current", "reference")
        },
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
