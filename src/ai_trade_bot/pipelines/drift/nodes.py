"""Nodes of the drift pipeline (glue over ``ai_trade_bot.monitoring.drift``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.config import parse_config
from ai_trade_bot.errors import ConfigError, DataValidationError
from ai_trade_bot.modeling.scoring import class_prior
from ai_trade_bot.monitoring.drift import (
    LEGACY_RULES,
    DriftConfig,
    RuleConfig,
    drift_report,
    performance_from_evaluation,
    performance_from_runner,
    prediction_columns,
    retrain_decision,
    runner_current,
)
from ai_trade_bot.registry.bundle import Bundle


def _config(drift: dict[str, Any]) -> tuple[DriftConfig, RuleConfig]:
    config = parse_config(DriftConfig, drift, name="drift")
    for old, new in LEGACY_RULES.items():
        if old in (config.rules or {}):
            raise ConfigError(
                f"parameters 'drift.rules': '{old}' is no longer read; write {new} instead."
            )
    return config, parse_config(RuleConfig, config.rules, name="drift.rules")


def detect_drift(
    deploy_bundle: Bundle,
    features: pd.DataFrame,
    ohlcv_clean: pd.DataFrame,
    drift: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    """Data and prediction drift of the latest candles against the bundle's training
    window (see :mod:`ai_trade_bot.monitoring.drift`).

    Returns:
        ``drift_report`` (HTML) and ``drift_summary``.
    """
    config, _ = _config(drift)
    bundle = deploy_bundle
    columns = bundle.feature_columns
    start, end = pd.Timestamp(bundle.training["start"]), pd.Timestamp(bundle.training["end"])
    reference = features.loc[start:end, columns].dropna()
    if len(reference) <= bundle.context_rows:
        raise DataValidationError(
            f"drift: the bundle's training window {start}..{end} has {len(reference)} complete "
            "feature rows in `features`; run `features` on the data the bundle was trained on."
        )
    reference_out = bundle.predict(
        ohlcv_clean.loc[:end], start=reference.index[bundle.context_rows]
    )
    if config.current_source == "runner":
        current, current_out = runner_current(
            config.state_path,
            columns,
            config.current_rows,
            symbol=config.symbol,
            model_symbol=bundle.symbol,
        )
    else:
        current = features[columns].dropna().iloc[-config.current_rows :]
        history = ohlcv_clean.loc[: current.index[-1]]
        current_out = bundle.predict(history, start=current.index[0])
    reference_frame = reference.join(prediction_columns(reference_out), how="inner")
    current_frame = current.join(prediction_columns(current_out), how="inner")
    html, summary = drift_report(reference_frame, current_frame, config)
    return html, summary | {"source": config.current_source, "model": bundle.lineage}


def check_performance(
    deploy_bundle: Bundle, evaluation: dict[str, Any], labels: pd.DataFrame, drift: dict[str, Any]
) -> dict[str, Any]:
    """The performance rules' figures: over the runner's recorded decisions (of the
    symbol trading the deployed model) when it has any (``drift.current_source:
    runner``), else over the evaluate test span; the evaluate span's figures beside them
    as the baseline the rules judge against."""
    config, rules = _config(drift)
    baseline = performance_from_evaluation(evaluation)
    performance = None
    if config.current_source == "runner":
        trained = labels["direction"].loc[: pd.Timestamp(deploy_bundle.training["end"])]
        performance = performance_from_runner(
            config.state_path,
            labels["direction"],
            rules.monitoring_rows,
            prior_class=int(np.argmax(class_prior(trained.dropna()))),
            symbol=config.symbol,
            model_symbol=deploy_bundle.symbol,
        )
    return (performance or baseline) | {"baseline": baseline}


def decide_retrain(
    drift_summary: dict[str, Any], performance: dict[str, Any], drift: dict[str, Any]
) -> dict[str, Any]:
    """``retrain_required``: every broken rule and the figures behind it."""
    config, rules = _config(drift)
    return retrain_decision(
        drift_summary, performance, config, rules, baseline=performance.get("baseline")
    )


def drift_metrics(retrain_required: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The drift shares and the decision as MLflow metrics."""
    drift = retrain_required["drift"]
    return {
        "drift.feature_share": {"value": float(drift["feature_drift_share"]), "step": 0},
        "drift.prediction_share": {"value": float(drift["prediction_drift_share"]), "step": 0},
        "drift.retrain_required": {"value": float(retrain_required["retrain"]), "step": 0},
    }
