"""Evaluate: pick the meta configuration on validation rows, then test once, honestly."""

from ai_trade_bot.pipelines.evaluate.pipeline import create_pipeline

__all__ = ["create_pipeline"]
