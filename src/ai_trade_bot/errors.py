"""Exception hierarchy, so callers (pipelines, tests, the live runner) can react per kind."""

from __future__ import annotations


class AiTradeBotError(Exception):
    """Base class for every error raised by ai_trade_bot."""


class ConfigError(AiTradeBotError, ValueError):
    """A parameter block is missing a key, has an unknown key or an invalid value."""


class DataSourceError(AiTradeBotError):
    """A data source could not be read or fetched."""


class DataValidationError(AiTradeBotError, ValueError):
    """Input data broke a validation rule (the message names the file, rule and a row)."""


class ModelNotFittedError(AiTradeBotError, RuntimeError):
    """A model was asked to predict before it was fitted."""
