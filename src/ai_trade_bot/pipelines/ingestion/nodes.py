"""Nodes of the ingestion pipeline (glue over ``ai_trade_bot.data``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ai_trade_bot.config import parse_config
from ai_trade_bot.data.ingest import load_from_source, parse_ingestion_config
from ai_trade_bot.data.validation import ValidationConfig, validate_ohlcv
from ai_trade_bot.errors import ConfigError


def load_ohlcv(ingestion: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Load and normalise candles from ``ingestion.source``.

    Returns:
        ``ohlcv_raw`` and ``ohlcv_metadata`` (source, symbol, timeframe).
    """
    config = parse_ingestion_config(ingestion)
    from ai_trade_bot.universe.ingest import is_universe

    if is_universe(config):
        raise ConfigError(
            "ingestion names many symbols (ingestion.symbols, a basket, or a folder or glob "
            "path); this pipeline trades one. Run them with `kedro run --pipeline=universe`, "
            "or pick one symbol with ingestion.path=<file> or ingestion.symbol."
        )
    return load_from_source(config)


def validate_candles(
    ohlcv_raw: pd.DataFrame, ohlcv_metadata: dict[str, str], validation: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, dict[str, float]]]:
    """Validate candles, quarantining rows that break a rule.

    Returns:
        ``ohlcv_clean``, ``ohlcv_rejected``, the data quality summary, and its counts as
        MLflow metrics.
    """
    config = parse_config(ValidationConfig, validation, name="ingestion.validation")
    clean, rejected, summary = validate_ohlcv(
        ohlcv_raw,
        timeframe=ohlcv_metadata["timeframe"],
        config=config,
        source=ohlcv_metadata["source"],
    )
    summary = {**summary, "symbol": ohlcv_metadata["symbol"]}
    counts = {
        "dq.rows_in": float(summary["rows_in"]),
        "dq.rows_kept": float(summary["rows_kept"]),
        "dq.rows_rejected": float(summary["rows_rejected"]),
        "dq.gaps": float(summary["gaps"]["count"]),
        "dq.return_outliers": float(summary["return_outliers"]["count"]),
        **{f"dq.rejected.{k}": float(v) for k, v in summary["rejected_by_rule"].items()},
    }
    metrics = {name: {"value": value, "step": 0} for name, value in counts.items()}
    return clean, rejected, summary, metrics
