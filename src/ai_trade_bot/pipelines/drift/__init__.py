"""The ``drift`` pipeline."""

from ai_trade_bot.pipelines.drift.pipeline import create_pipeline

__all__ = ["create_pipeline"]
