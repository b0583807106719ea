"""Prediction agents and their registry.

>>> from ai_trade_bot.agents import AGENTS, make_agent
>>> agent = make_agent("trend_lstm", window=32)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ai_trade_bot.agents.base import Agent
from ai_trade_bot.agents.gbm import GBMAgent
from ai_trade_bot.agents.pattern import PatternCNNAgent
from ai_trade_bot.agents.regime import RegimeAgent
from ai_trade_bot.agents.sentiment import SentimentAgent
from ai_trade_bot.agents.trend import TrendLSTMAgent, TrendTransformerAgent
from ai_trade_bot.agents.volatility import VolatilityAgent
from ai_trade_bot.config import parse_config
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


@dataclass(frozen=True)
class AgentBlock:
    """``params:agents.<name>``: which agent, its hyperparameters, and whether the tune
    pipeline's best parameters apply when they exist."""

    name: str
    use_tuned: bool = True
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_agent_class(self.name)
        if not isinstance(self.use_tuned, bool):
            raise ValueError(f"use_tuned must be true or false, got {self.use_tuned!r}")


def parse_agent_block(block: dict[str, Any] | None, *, name: str) -> AgentBlock:
    """An agent block, failing by name on a misspelt key (``use_tunned``) or an unknown
    hyperparameter of the agent (checked by building it)."""
    parsed = parse_config(AgentBlock, block, name=f"agents.{name}")
    make_agent(parsed.name, **dict(parsed.params or {}))
    return parsed


def make_agent(name: str, **params: Any) -> Agent:
    """Instantiate a registered agent, failing by name on an unknown hyperparameter."""
    cls = get_agent_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"agents.{name}: {exc}") from exc


__all__ = ["AGENTS", "Agent", "AgentBlock", "get_agent_class", "make_agent", "parse_agent_block"]
