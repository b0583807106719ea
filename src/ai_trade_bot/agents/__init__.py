"""Prediction agents and their registry.

>>> from ai_trade_bot.agents import AGENTS, make_agent
>>> agent = make_agent("trend_lstm", window=32)
"""

from __future__ import annotations

from typing import Any

from ai_trade_bot.agents.base import Agent
from ai_trade_bot.agents.gbm import GBMAgent
from ai_trade_bot.agents.pattern import PatternCNNAgent
from ai_trade_bot.agents.regime import RegimeAgent
from ai_trade_bot.agents.sentiment import SentimentAgent
from ai_trade_bot.agents.trend import TrendLSTMAgent, TrendTransformerAgent
from ai_trade_bot.agents.volatility import VolatilityAgent
from ai_trade_bot.errors import ConfigError


class _Registry(dict):
    """``dict[str, type[Agent]]`` whose missing-key error lists the valid names."""

    def __missing__(self, key: str) -> type[Agent]:
        raise ConfigError(f"unknown agent {key!r}; valid agents: {sorted(self)}")


AGENTS: dict[str, type[Agent]] = _Registry(
    {
        cls.name: cls
        for cls in (
            TrendLSTMAgent,
            TrendTransformerAgent,
            VolatilityAgent,
            PatternCNNAgent,
            RegimeAgent,
            GBMAgent,
            SentimentAgent,
        )
    }
)


def get_agent_class(name: str) -> type[Agent]:
    """The agent class registered as ``name`` (ConfigError listing valid names if unknown)."""
    return AGENTS[name]


def make_agent(name: str, **params: Any) -> Agent:
    """Instantiate a registered agent, failing by name on an unknown hyperparameter."""
    cls = get_agent_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"agents.{name}: {exc}") from exc


__all__ = ["AGENTS", "Agent", "get_agent_class", "make_agent"]
