"""The ``universe`` pipeline: many symbols, cross-sectional features, pooled models."""

from ai_trade_bot.pipelines.universe.pipeline import create_pipeline

__all__ = ["create_pipeline"]
