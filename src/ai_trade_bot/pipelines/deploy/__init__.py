"""The ``deploy`` pipeline."""

from ai_trade_bot.pipelines.deploy.pipeline import create_pipeline

__all__ = ["create_pipeline"]
