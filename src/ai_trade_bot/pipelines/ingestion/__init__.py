"""Ingestion: load candles from the configured source, validate, quarantine bad rows."""

from ai_trade_bot.pipelines.ingestion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
