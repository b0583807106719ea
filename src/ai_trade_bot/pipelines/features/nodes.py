"""Nodes of the features pipeline (glue over ``ai_trade_bot.features``)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ai_trade_bot.config import parse_config
from ai_trade_bot.features.build import (
    LabelConfig,
    build_features,
    check_features,
    feature_config,
    labels_for,
)
from ai_trade_bot.training.folds import WalkForwardConfig, minimum_rows

logger = logging.getLogger(__name__)


def compute_features(
    ohlcv_clean: pd.DataFrame,
    ohlcv_metadata: dict[str, str],
    features: dict[str, Any],
    labels: dict[str, Any],
    walk_forward: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Build the feature matrix, check it can feed ``train``, and describe it.

    Args:
        features: ``params:features`` (``auto`` values follow the data's timeframe).
        labels: ``params:labels`` (the label horizon drops the last rows).
        walk_forward: ``params:train.walk_forward``, for the rows train will need.

    Returns:
        ``features`` (one row per candle, NaN during warm-up) and ``feature_manifest``.
    """
    timeframe = ohlcv_metadata["timeframe"]
    span = ohlcv_clean.index[-1] - ohlcv_clean.index[0] if len(ohlcv_clean) else None
    config = feature_config(features).resolve(timeframe, span)
    label_config = parse_config(LabelConfig, labels, name="labels")
    wf = parse_config(WalkForwardConfig, walk_forward, name="train.walk_forward")
    frame = build_features(ohlcv_clean, timeframe=timeframe, config=config)
    check_features(
        frame,
        ohlcv_clean,
        timeframe=timeframe,
        required_rows=minimum_rows(wf),
        label_horizon=label_config.horizon,
    )
    valid = frame.dropna()
    manifest = {
        "symbol": ohlcv_metadata["symbol"],
        "timeframe": timeframe,
        "n_rows": len(frame),
        "n_features": frame.shape[1],
        "columns": list(frame.columns),
        "resolved": {
            "multi_timeframe": list(config.multi_timeframe),
            "vwap_anchor": config.vwap_anchor,
        },
        "warmup_rows": config.warmup,
        "first_complete_row": str(valid.index[0]) if len(valid) else None,
        "complete_rows": len(valid),
    }
    logger.info(
        "built %d features for %d %s rows (%d complete; higher timeframes %s, VWAP anchor %s)",
        frame.shape[1],
        len(frame),
        timeframe,
        len(valid),
        list(config.multi_timeframe),
        config.vwap_anchor,
    )
    return frame, manifest


def compute_labels(ohlcv_clean: pd.DataFrame, labels: dict[str, Any]) -> pd.DataFrame:
    """Build the labels (direction, next return, forward realized volatility)."""
    config = parse_config(LabelConfig, labels, name="labels")
    return labels_for(ohlcv_clean, config)
