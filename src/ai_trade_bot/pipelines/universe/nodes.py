"""Nodes of the universe pipeline (glue over ``ai_trade_bot.universe`` and training)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pandas as pd

from ai_trade_bot.agents import parse_agent_block
from ai_trade_bot.config import parse_config
from ai_trade_bot.data.ingest import parse_ingestion_config
from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.features.build import LabelConfig, build_features, feature_config, labels_for
from ai_trade_bot.features.cross_section import (
    CrossSectionConfig,
    cross_section_features,
    cross_section_labels,
)
from ai_trade_bot.registry.bundle import model_frame
from ai_trade_bot.training.fanout import ExecutorConfig
from ai_trade_bot.training.folds import WalkForwardConfig
from ai_trade_bot.training.pooled import stack, train_universe
from ai_trade_bot.universe.ingest import load_universe
from ai_trade_bot.universe.panel import align, from_long, symbol_frame, to_long

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
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Each symbol's own features on its own bars, the cross-sectional columns, labels
    (direction and next return per symbol; the excess over the basket and its rank).

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
    inputs, targets, next_returns = {}, {}, {}
    for symbol in panel["close"].columns:
        bars = symbol_frame(panel, symbol)
        span = bars.index[-1] - bars.index[0]
        config = feature_config(block).resolve(timeframe, span)
        own = build_features(bars, timeframe=timeframe, config=config)
        inputs[symbol] = model_frame(own.join(cs[symbol]), bars)
        targets[symbol] = labels_for(bars, label_config)
        next_returns[symbol] = targets[symbol]["next_return"]
    excess = cross_section_labels(next_returns, panel, cross)
    X = stack(inputs)
    y = stack({s: targets[s].join(excess[s]) for s in targets}).reindex(X.index)
    keep = y[["direction", "next_return"]].notna().all(axis=1)
    X, y = X[keep], y[keep]
    if X.empty:
        raise DataValidationError("universe: no complete feature rows with labels")
    codes = {s: i for i, s in enumerate(sorted(panel["close"].columns))}
    X = X.assign(symbol_id=[codes[s] for s in X.index.get_level_values("symbol")])
    manifest = {
        "symbols": sorted(codes),
        "symbol_ids": codes,
        "rows": len(X),
        "rows_per_symbol": {s: int(v) for s, v in X.groupby(level="symbol").size().items()},
        "n_features": X.shape[1],
        "cross_section_columns": list(cs[next(iter(cs))].columns),
        "cross_section": dataclasses.asdict(cross),
    }
    logger.info("universe features: %d rows x %d columns over %d symbols", *X.shape, len(codes))
    return X.reset_index(), y.reset_index(), manifest


def train_universe_models(
    universe_model_input: pd.DataFrame,
    universe_labels: pd.DataFrame,
    train: dict[str, Any],
    agents: dict[str, Any],
    features: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """Pooled and per-symbol walk-forward fits fanned out on joblib (loky or Dask).

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
    _log_to_mlflow(fit.summary)
    return fit.oof.reset_index(), fit.models, fit.summary


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
