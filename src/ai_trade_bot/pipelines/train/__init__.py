"""Train: walk-forward out-of-fold predictions and a deployment fit per agent."""

from ai_trade_bot.pipelines.train.pipeline import create_pipeline

__all__ = ["create_pipeline"]
