"""Nodes of the features pipeline (glue over ``ai_trade_bot.features``)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ai_trade_bot.config import parse_config
from ai_trade_bot.features.build import LabelConfig, build_features, feature_config, labels_for

logger = logging.getLogger(__name__)


def compute_features(
    ohlcv_clean: pd.DataFrame, ohlcv_metadata: dict[str, str], features: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Build the feature matrix and a manifest describing it.

    Returns:
        ``features`` (one row per candle, NaN during warm-up) and ``feature_manifest``.
    """
    config = feature_config(features)
    frame = build_features(ohlcv_clean, timeframe=ohlcv_metadata["timeframe"], config=config)
    valid = frame.dropna()
    manifest = {
        "symbol": ohlcv_metadata["symbol"],
        "timeframe": ohlcv_metadata["timeframe"],
        "n_rows": len(frame),
        "n_features": frame.shape[1],
        "columns": list(frame.columns),
        "warmup_rows": config.warmup,
        "first_complete_row": str(valid.index[0]) if len(valid) else None,
        "complete_rows": len(valid),
    }
    logger.info(
        "built %d features for %d rows (%d complete)", frame.shape[1], len(frame), len(valid)
    )
    return frame, manifest


def compute_labels(ohlcv_clean: pd.DataFrame, labels: dict[str, Any]) -> pd.DataFrame:
    """Build the labels (direction, next return, forward realized volatility)."""
    config = parse_config(LabelConfig, labels, name="labels")
    return labels_for(ohlcv_clean, config)
