"""Features: indicators, statistics, volatility, microstructure, higher timeframes, labels."""

from ai_trade_bot.pipelines.features.pipeline import create_pipeline

__all__ = ["create_pipeline"]
