"""Monitoring: data and prediction drift (Evidently), performance rules, retrain decision.

- **Drift**: the reference is the deployed bundle's training window, the current data the
  latest ``current_rows`` candles (from the ingested data or from the live runner's state).
  One Evidently report covers the features and the agents' and meta-agent's outputs
  (``pred:<agent>.<output>``), with the test fixed per column type in config (Evidently
  otherwise switches tests with the sample size).
- **The drift decision is calibrated against the reference's own variation.** Rolling
  features are strongly autocorrelated, so a plain KS test at 5% flags most of them between
  any two windows of the same market (82% of the columns on the bundled EURUSD hours, with
  nothing changed). So ``null_blocks`` blocks of ``current_rows`` rows inside the reference
  are each compared with the rest of it: a feature drifts when its KS distance to the
  reference exceeds the largest distance any block showed, and the data drifts when the
  share of such features exceeds both ``drift_share`` and the share a block showed against
  thresholds from the other blocks (a null distribution of the share, with the
  autocorrelation in it).
- **Performance rules** over a monitoring window of the runner's recorded decisions, or the
  evaluate span when no runner has run, judged against what the model was accepted on:
  accuracy against the class prior's on the same rows, Sharpe against the evaluate span's
  (allowing for the window's sampling error), drawdown against the evaluate span's.
- **Retrain**: drift or any broken rule, with every reason and the figures behind it.
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

    accuracy_margin: float | None = 0.03  # accuracy below the prior's by more than this
    sharpe_z: float | None = 2.0  # Sharpe below the evaluate span's by more than z errors
    drawdown_ratio: float | None = 1.5  # drawdown above this times the evaluate span's ...
    drawdown_floor: float = 0.05  # ... and above this
    monitoring_rows: int = 500


# rules this version replaced, and what to write instead
LEGACY_RULES = {
    "min_accuracy": "accuracy_margin (accuracy is judged against the class prior's)",
    "min_sharpe": "sharpe_z (Sharpe is judged against the evaluate span's)",
    "max_drawdown": "drawdown_ratio and drawdown_floor (against the evaluate span's drawdown)",
}


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
    null_blocks: int = 20
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
        if self.null_blocks < 5:
            raise ValueError(f"null_blocks must be >= 5, got {self.null_blocks}")


def ks_distances(reference: pd.DataFrame, current: pd.DataFrame) -> np.ndarray:
    """The two-sample KS distance of each column (scipy's ``ks_2samp`` statistic, the one
    Evidently's ``ks`` test computes)."""
    from scipy.stats import ks_2samp

    return np.array(
        [
            ks_2samp(reference[c].to_numpy(), current[c].to_numpy()).statistic
            for c in reference.columns
        ]
    )


def null_drift(reference: pd.DataFrame, rows: int, blocks: int) -> dict[str, Any]:
    """The reference against itself: ``blocks`` evenly spaced blocks of ``rows`` rows (at
    most a third of the reference), each compared with the rest.

    Returns the per-column thresholds (the largest block distance) and, per block, the
    share of columns above thresholds taken from the other blocks only (leave one out):
    how large a drift share gets when nothing changed.
    """
    n = len(reference)
    rows = max(min(rows, n // 3), 10)
    starts = np.linspace(0, n - rows, blocks).round().astype(int)
    distances = np.vstack(
        [
            ks_distances(
                pd.concat([reference.iloc[:a], reference.iloc[a + rows :]]),
                reference.iloc[a : a + rows],
            )
            for a in starts
        ]
    )
    shares = [
        float(np.mean(distances[b] > np.delete(distances, b, axis=0).max(axis=0)))
        for b in range(blocks)
    ]
    return {
        "blocks": int(blocks),
        "rows": int(rows),
        "thresholds": distances.max(axis=0),
        "shares": shares,
    }


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
    # the decision: KS distances against the reference's own variation (module docstring)
    null = null_drift(reference[features], len(current), config.null_blocks)
    distance = ks_distances(reference[features], current[features])
    calibrated = [
        c for c, d, t in zip(features, distance, null["thresholds"], strict=True) if d > t
    ]
    share = len(calibrated) / len(features) if features else 0.0
    threshold = max(config.drift_share, max(null["shares"]))
    summary = {
        "method": {
            "numerical": config.num_method,
            "numerical_threshold": config.num_threshold,
            "categorical": config.cat_method,
            "categorical_threshold": config.cat_threshold,
            "decision": "KS distance above the largest of the reference's own blocks",
        },
        "reference": _span(reference),
        "current": _span(current),
        "n_columns": len(columns),
        "drift_share": len(drifted) / len(columns),
        "feature_drift_share": share,
        "feature_share_threshold": threshold,
        "evidently_feature_drift_share": _share(drifted, features),
        "prediction_drift_share": _share(drifted, predictions),
        "drifted_columns": sorted(calibrated),
        "evidently_drifted_columns": sorted(drifted),
        "null": {
            "blocks": null["blocks"],
            "rows": null["rows"],
            "shares": null["shares"],
            "max_share": max(null["shares"]),
        },
        "scores": scores,
        "dataset_drift": share > threshold,
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
    prior_class: int,
    symbol: str | None = None,
    model_symbol: str = "",
) -> dict[str, Any] | None:
    """Accuracy (and the class prior's, predicting ``prior_class`` on the same rows),
    drawdown and Sharpe of one symbol's runner over its last ``rows`` decisions, or None
    when it has recorded none. Realized directions come from ``labels`` (the ingested
    candles)."""
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
    scored = truth.notna().to_numpy()
    predicted = known.to_numpy(dtype=np.float64).argmax(axis=1)
    real = truth[scored].to_numpy()
    ppy = periods_per_year(equity.index)
    return {
        "source": f"runner:{path} ({name})",
        "window": _span(decisions),
        "accuracy": float(np.mean(predicted[scored] == real)) if scored.any() else float("nan"),
        "prior_accuracy": float(np.mean(real == prior_class)) if scored.any() else float("nan"),
        "scored_rows": int(scored.sum()),
        "rows": len(equity),
        "periods_per_year": float(ppy),
        "max_drawdown": max_drawdown(equity),
        "sharpe": sharpe(equity_returns(equity), ppy),
    }


def performance_from_evaluation(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The rules' figures for the evaluate test span: what the model was accepted on, and
    the current figures when no runner has run."""
    meta = evaluation["strategies"]["meta_agent"]
    clf = evaluation["classification"]["meta_agent"]
    span = evaluation["test_span"]
    return {
        "source": "evaluate test span",
        "window": span,
        "accuracy": float(clf["accuracy"]),
        "prior_accuracy": float(clf["prior_accuracy"]),
        "rows": int(span.get("bars", clf.get("n", 0))),
        "periods_per_year": float(span.get("bars_per_year", 1.0)),
        "max_drawdown": float(meta["max_drawdown"]),
        "sharpe": float(meta["sharpe"]),
    }


def rule_checks(
    performance: dict[str, Any], baseline: dict[str, Any], rules: RuleConfig
) -> list[dict[str, Any]]:
    """Each performance rule, judged against what the model was accepted on (``baseline``:
    the evaluate span): ``{"rule", "value", "threshold", "broken", "detail"}``."""
    checks = []
    if rules.accuracy_margin is not None:
        threshold = performance["prior_accuracy"] - rules.accuracy_margin
        checks.append(
            {
                "rule": "accuracy",
                "value": performance["accuracy"],
                "threshold": threshold,
                "broken": bool(performance["accuracy"] < threshold),
                "detail": f"below the class prior's accuracy {performance['prior_accuracy']:.3f} "
                f"on the same rows by more than {rules.accuracy_margin}",
            }
        )
    if rules.sharpe_z is not None:
        # the annualised Sharpe of n returns has a standard error near sqrt(ppy / n)
        error = float(np.sqrt(performance["periods_per_year"] / max(performance["rows"], 1)))
        threshold = baseline["sharpe"] - rules.sharpe_z * error
        checks.append(
            {
                "rule": "sharpe",
                "value": performance["sharpe"],
                "threshold": threshold,
                "broken": bool(performance["sharpe"] < threshold),
                "detail": f"below the evaluate span's {baseline['sharpe']:.3f} by more than "
                f"{rules.sharpe_z} standard errors ({error:.3f} each over "
                f"{performance['rows']} rows)",
            }
        )
    if rules.drawdown_ratio is not None:
        threshold = max(rules.drawdown_ratio * baseline["max_drawdown"], rules.drawdown_floor)
        checks.append(
            {
                "rule": "drawdown",
                "value": performance["max_drawdown"],
                "threshold": threshold,
                "broken": bool(performance["max_drawdown"] > threshold),
                "detail": f"deeper than {rules.drawdown_ratio} x the evaluate span's "
                f"{baseline['max_drawdown']:.3f} (at least {rules.drawdown_floor})",
            }
        )
    return checks


def retrain_decision(
    drift: dict[str, Any],
    performance: dict[str, Any],
    config: DriftConfig,
    rules: RuleConfig,
    baseline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Whether to retrain, with every reason and the figures behind it (``baseline``: the
    evaluate span's figures; default ``performance`` itself)."""
    reasons = []
    share = drift["feature_drift_share"]
    threshold = drift.get("feature_share_threshold", config.drift_share)
    if share > threshold:
        reasons.append(
            {
                "rule": "data_drift",
                "value": share,
                "threshold": threshold,
                "detail": f"{len(drift['drifted_columns'])} drifted columns, e.g. "
                f"{drift['drifted_columns'][:5]}",
            }
        )
    checks = rule_checks(performance, baseline or performance, rules)
    for check in checks:
        if check["broken"]:
            reasons.append({k: check[k] for k in ("rule", "value", "threshold", "detail")})
    return {
        "retrain": bool(reasons),
        "reasons": reasons,
        "performance": performance,
        "checks": checks,
        "drift": {
            k: drift[k]
            for k in ("feature_drift_share", "prediction_drift_share", "current", "reference")
        }
        | {"feature_share_threshold": threshold},
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
