"""Nodes of the universe pipeline (glue over ``ai_trade_bot.universe`` and training)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.agents import parse_agent_block
from ai_trade_bot.config import parse_config
from ai_trade_bot.data.ingest import parse_ingestion_config
from ai_trade_bot.evaluation.portfolio import evaluate_portfolio
from ai_trade_bot.evaluation.settings import parse_evaluate_config
from ai_trade_bot.evaluation.universe import (
    evaluate_universe,
    predict_held_out,
    render_universe_report,
)
from ai_trade_bot.features.cross_section import (
    CrossSectionConfig,
)
from ai_trade_bot.modeling.meta import parse_meta_config
from ai_trade_bot.portfolio.construct import PortfolioConfig
from ai_trade_bot.portfolio.limits import parse_risk_limits
from ai_trade_bot.registry import tracking
from ai_trade_bot.registry.universe_bundle import UniverseBundle, resolved_features
from ai_trade_bot.training.fanout import ExecutorConfig
from ai_trade_bot.training.folds import WalkForwardConfig
from ai_trade_bot.training.pooled import no_nan, train_universe
from ai_trade_bot.training.universe_meta import META, fit_universe_meta
from ai_trade_bot.universe.ingest import load_universe
from ai_trade_bot.universe.inputs import universe_inputs
from ai_trade_bot.universe.panel import align, to_long

logger = logging.getLogger(__name__)


def ingest_universe(
    ingestion: dict[str, Any], universe: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Load and validate every symbol; align them on one calendar (no forward fill).

    ``ingestion.source: bundled`` loads ``universe.bundled`` (the multi-symbol basket);
    the other sources read ``ingestion.symbols`` or a folder or glob ``ingestion.path``.

    Returns:
        ``universe_candles`` (long: timestamp, symbol, OHLCV, missing), ``universe_rejected``
        and ``universe_data_quality`` (with ``symbols``).
    """
    config = parse_ingestion_config(ingestion)
    if config.source == "bundled":
        config = dataclasses.replace(config, bundled=str(universe.get("bundled", "basket")))
    result = load_universe(config)
    panel = align(result.clean)
    summary = {
        **result.summary,
        "calendar": {
            "times": len(panel["close"]),
            "missing_bars": {s: int(v) for s, v in panel["missing"].sum().items()},
            "rule": "union of every symbol's bar times; a missing bar is NaN, never filled",
        },
    }
    rejected = result.rejected.reset_index().astype({"symbol": str})
    return to_long(panel), rejected, summary


def universe_features(
    universe_candles: pd.DataFrame,
    universe_data_quality: dict[str, Any],
    features: dict[str, Any],
    labels: dict[str, Any],
    train: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Each symbol's own features on its own bars, the cross-sectional columns, labels
    (direction and next return per symbol; the excess over the basket and its rank).

    The symbols' features are built on ``train.executor`` (loky, or Dask), one task per
    symbol; each symbol's rows are placed in the stacked frame as they arrive.

    Returns:
        ``universe_model_input`` and ``universe_labels`` (stacked, complete rows only, with
        ``timestamp`` and ``symbol`` columns) and ``universe_feature_manifest``.
    """
    executor = parse_config(ExecutorConfig, train.get("executor", {}), name="train.executor")
    X, y, manifest = universe_inputs(
        universe_candles, features, labels, universe_data_quality["timeframe"], executor=executor
    )
    X.reset_index(inplace=True)  # in place: a copy of a large universe doubles its memory
    y.reset_index(inplace=True)
    return X, y, manifest


def train_universe_models(
    universe_model_input: pd.DataFrame,
    universe_labels: pd.DataFrame,
    train: dict[str, Any],
    agents: dict[str, Any],
    features: dict[str, Any],
    meta: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """Pooled and per-symbol walk-forward fits fanned out on joblib (loky or Dask), then
    the meta-agent per symbol and pooled on their out-of-fold rows (see
    :mod:`ai_trade_bot.training.universe_meta`).

    Returns:
        ``universe_oof_predictions``, ``universe_models`` (scope -> agent -> fitted agent)
        and ``universe_train_summary``.
    """
    X = universe_model_input.set_index(["timestamp", "symbol"])
    y = universe_labels.set_index(["timestamp", "symbol"])
    walk_forward = parse_config(WalkForwardConfig, train["walk_forward"], name="train.walk_forward")
    executor = parse_config(ExecutorConfig, train.get("executor", {}), name="train.executor")
    chosen = {}
    for name in train.get("universe_agents", ["gbm"]):
        agent_block = parse_agent_block(agents[name], name=name)
        chosen[name] = dict(agent_block.params or {})
    cross = parse_config(
        CrossSectionConfig, dict(features).get("cross_section", {}), name="features.cross_section"
    )
    fit = train_universe(
        X,
        y,
        chosen,
        pooling=str(train.get("pooling", "both")),
        walk_forward=walk_forward,
        executor=executor,
        seed=int(train.get("seed", 42)),
        min_symbols=cross.min_symbols,
    )
    metas, meta_summary, meta_outputs = fit_universe_meta(
        fit.oof, y, parse_meta_config(meta), executor
    )
    for scope, agent in metas.items():
        fit.models[scope][META] = agent
    summary = no_nan(fit.summary | {"meta": meta_summary})
    _log_to_mlflow(summary)
    shared = [c for c in fit.oof.columns if c in meta_outputs.columns or c == "fold"]
    oof = pd.concat([fit.oof, meta_outputs.assign(agent=META, fold=np.nan)[[*shared, "agent"]]])
    return oof.reset_index(), fit.models, summary


def _log_to_mlflow(summary: dict[str, Any]) -> None:
    """Nested runs per agent and scope, from the driver, after every task has finished."""
    import mlflow

    if mlflow.active_run() is None:
        return
    for agent, block in summary["agents"].items():
        for scope in ("pooled", "per_symbol"):
            if scope not in block:
                continue
            scores = block[scope]
            with mlflow.start_run(run_name=f"universe/{agent}/{scope}", nested=True):
                mlflow.set_tags({"agent": agent, "scope": scope})
                mlflow.log_metrics(
                    {
                        k: float(scores[k])
                        for k in ("log_loss", "prior_log_loss", "accuracy", "rank_ic", "icir")
                        if pd.notna(scores[k])
                    }
                )
    for kind in ("pooled", "per_symbol"):
        scores = summary.get("meta", {}).get(kind)
        if scores is None:
            continue
        with mlflow.start_run(run_name=f"universe/meta/{kind}", nested=True):
            mlflow.set_tags({"agent": "meta", "scope": kind})
            mlflow.log_metrics({k: float(scores[k]) for k in ("log_loss", "prior_log_loss")})


def predict_universe_test_span(
    universe_model_input: pd.DataFrame, universe_models: dict[str, Any], train: dict[str, Any]
) -> pd.DataFrame:
    """The deployment fits' outputs on the held-out test span (see
    :func:`ai_trade_bot.evaluation.universe.predict_held_out`)."""
    X = universe_model_input.set_index(["timestamp", "symbol"])
    walk_forward = parse_config(WalkForwardConfig, train["walk_forward"], name="train.walk_forward")
    return predict_held_out(X, universe_models, walk_forward)


def evaluate_universe_test_span(
    universe_test_outputs: pd.DataFrame,
    universe_oof_predictions: pd.DataFrame,
    universe_candles: pd.DataFrame,
    universe_labels: pd.DataFrame,
    universe_train_summary: dict[str, Any],
    universe_data_quality: dict[str, Any],
    evaluate: dict[str, Any],
    risk: dict[str, Any],
    portfolio: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, str]:
    """Trade the universe as one book (construction chosen on the out-of-fold rows, the
    held-out span evaluated once) and, for reference, each fit as equal-weight sleeves;
    the honest statistics and the HTML report.

    Returns:
        ``universe_evaluation``, ``universe_equity_curves`` and ``universe_report``.
    """
    config = parse_evaluate_config(evaluate)
    limits = parse_risk_limits(risk)
    construction = parse_config(PortfolioConfig, portfolio, name="portfolio")
    evaluation, curves = evaluate_universe(
        universe_test_outputs, universe_candles, universe_labels, config
    )
    book, book_curves, exposure = evaluate_portfolio(
        universe_test_outputs, universe_oof_predictions, universe_candles, universe_labels,
        universe_train_summary, config, limits, construction,
    )  # fmt: skip
    evaluation["portfolio"] = book
    evaluation["mlflow_run_id"] = tracking.active_run_id()
    curves = book_curves.join(curves, how="outer")
    curves.index.name = "timestamp"
    report = render_universe_report(
        evaluation, curves, universe_train_summary, universe_data_quality, exposure
    )
    return evaluation, curves, report


def package_universe_bundle(
    universe_models: dict[str, Any],
    universe_evaluation: dict[str, Any],
    universe_data_quality: dict[str, Any],
    universe_candles: pd.DataFrame,
    features: dict[str, Any],
    labels: dict[str, Any],
    evaluate: dict[str, Any],
    portfolio: dict[str, Any],
    risk: dict[str, Any],
) -> UniverseBundle:
    """The universe's bundle: every fit, the deployed book (model, method, margin chosen
    on validation rows), the construction, the limits and every setting (parsed first, so
    a misspelt key fails here by name).

    Returns:
        ``universe_bundle``.
    """
    parse_evaluate_config(evaluate)
    parse_config(PortfolioConfig, portfolio, name="portfolio")
    parse_risk_limits(risk)
    times = pd.DatetimeIndex(universe_candles["timestamp"])
    timeframe = universe_data_quality["timeframe"]
    deployed = universe_evaluation["portfolio"]["deployed"]
    validation = universe_evaluation["portfolio"]["validation"]["span"]
    return UniverseBundle(
        symbols=sorted(universe_candles["symbol"].unique()),
        timeframe=timeframe,
        features=resolved_features(features, timeframe, times.max() - times.min()),
        labels=dict(labels),
        evaluate=dict(evaluate),
        portfolio=dict(portfolio),
        risk=dict(risk),
        models=universe_models,
        deployed={k: deployed[k] for k in ("model", "method", "margin")},
        training={
            "start": str(times.min()),
            "validation": validation,
            "held_out": universe_evaluation["portfolio"]["span"],
        },
    )


def deploy_universe_bundle(
    universe_bundle: UniverseBundle,
    universe_candles: pd.DataFrame,
    universe_evaluation: dict[str, Any],
    universe_report: str,
    universe_train_summary: dict[str, Any],
    deploy: dict[str, Any],
    project_root: str,
) -> dict[str, Any]:
    """Register the universe bundle (``challenger``) and move ``champion`` only through
    the gate (:mod:`ai_trade_bot.registry.universe_deploy`).

    Returns:
        ``universe_deploy_report``.
    """
    from pathlib import Path

    from ai_trade_bot.registry.gate import DeployConfig
    from ai_trade_bot.registry.lineage import git_commit, sha256_text
    from ai_trade_bot.registry.universe_deploy import register_universe

    config = parse_config(DeployConfig, deploy, name="deploy")
    lineage = {
        "git_commit": git_commit(Path(project_root)),
        "training_run_id": str(universe_evaluation.get("mlflow_run_id") or "untracked"),
        "evaluation_run_id": str(universe_evaluation.get("mlflow_run_id") or "untracked"),
        "evaluation_report_sha256": sha256_text(universe_report),
    }
    with tracking.ensure_run("universe"):
        return register_universe(
            universe_bundle, universe_candles, universe_evaluation, config,
            config.universe_model_name, lineage,
        )  # fmt: skip
