"""Tune: an Optuna study for one agent, pruned through Lightning."""

from ai_trade_bot.pipelines.tune.pipeline import create_pipeline

__all__ = ["create_pipeline"]
