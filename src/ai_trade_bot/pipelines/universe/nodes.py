"""Nodes of the universe pipeline (glue over ``ai_trade_bot.universe`` and training)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.agents import parse_agent_block
from ai_trade_bot.config import parse_config
from ai_trade_bot.data.ingest import parse_ingestion_config
from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.evaluation.portfolio import evaluate_portfolio
from ai_trade_bot.evaluation.settings import parse_evaluate_config
from ai_trade_bot.evaluation.universe import (
    evaluate_universe,
    predict_held_out,
    render_universe_report,
)
from ai_trade_bot.features.build import LabelConfig, labels_for
from ai_trade_bot.features.cross_section import (
    CROSS_COLUMNS,
    CrossSectionConfig,
    cross_section_features,
    cross_section_labels,
)
from ai_trade_bot.modeling.meta import parse_meta_config
from ai_trade_bot.portfolio.construct import PortfolioConfig
from ai_trade_bot.portfolio.limits import parse_risk_limits
from ai_trade_bot.registry import tracking
from ai_trade_bot.training.fanout import ExecutorConfig, iter_tasks
from ai_trade_bot.training.folds import WalkForwardConfig
from ai_trade_bot.training.pooled import Stacker, no_nan, train_universe
from ai_trade_bot.training.universe_meta import META, fit_universe_meta
from ai_trade_bot.universe.ingest import load_universe
from ai_trade_bot.universe.panel import align, from_long, symbol_frame, to_long
from ai_trade_bot.universe.rows import SymbolTask, symbol_rows

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
    block = dict(features)
    cross = parse_config(
        CrossSectionConfig, block.pop("cross_section", {}), name="features.cross_section"
    )
    timeframe = universe_data_quality["timeframe"]
    label_config = parse_config(LabelConfig, labels, name="labels")
    panel = from_long(universe_candles)
    cs = cross_section_features(panel, cross)
    symbols = sorted(panel["close"].columns)
    codes = {s: i for i, s in enumerate(symbols)}
    bars = {s: symbol_frame(panel, s) for s in symbols}
    targets = {s: labels_for(bars[s], label_config) for s in symbols}
    excess = cross_section_labels({s: t["next_return"] for s, t in targets.items()}, panel, cross)
    tasks = [
        SymbolTask(s, codes[s], bars[s], cs.pop(s), targets.pop(s), excess.pop(s), block, timeframe)
        for s in symbols
    ]
    # the first symbol is built here: its columns lay out the stacked frames
    probe = symbol_rows(tasks[0])
    indexes = {s: bars[s].index for s in symbols}
    del bars
    # float32: half the memory of a universe (LightGBM bins its inputs and torch trains in
    # float32 anyway)
    inputs = Stacker(indexes, probe[0].columns, np.float32)
    outputs = Stacker(indexes, probe[1].columns, np.float64)
    executor = parse_config(ExecutorConfig, train.get("executor", {}), name="train.executor")
    rows_per_symbol = {}
    results = iter_tasks(symbol_rows, tasks[1:], executor)
    for symbol, (X, y) in zip(symbols, itertools.chain([probe], results), strict=True):
        inputs.put(symbol, X)
        outputs.put(symbol, y)
        rows_per_symbol[symbol] = len(X)
        del X, y  # placed: the next symbol's rows may arrive
    X = inputs.frame()
    y = outputs.frame()
    del inputs, outputs
    if X.empty:
        raise DataValidationError("universe: no complete feature rows with labels")
    manifest = {
        "symbols": sorted(codes),
        "symbol_ids": codes,
        "rows": len(X),
        "rows_per_symbol": rows_per_symbol,
        "n_features": X.shape[1],
        "cross_section_columns": list(CROSS_COLUMNS),
        "cross_section": dataclasses.asdict(cross),
    }
    logger.info("universe features: %d rows x %d columns over %d symbols", *X.shape, len(codes))
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
