"""Timeframe strings ('1m', '4h', '1d', '1w') as pandas offsets."""

from __future__ import annotations

import functools
import re

import pandas as pd

from ai_trade_bot.errors import ConfigError

_UNITS = {"s": "s", "m": "min", "h": "h", "d": "D", "w": "W"}
_PATTERN = re.compile(r"^(\d+)([smhdw])$")


@functools.lru_cache(maxsize=64)  # called per candle by the live runner's features
def timeframe_to_timedelta(timeframe: str) -> pd.Timedelta:
    """Return the bar length of a ccxt-style timeframe such as ``"15m"`` or ``"1d"``.

    Raises:
        ConfigError: If the string is not ``<int><s|m|h|d|w>``.
    """
    match = _PATTERN.match(str(timeframe).strip())
    if not match:
        raise ConfigError(
            f"timeframe {timeframe!r} is not understood; expected <number><unit> with unit "
            "one of s, m, h, d, w (for example '1m', '4h', '1d')."
        )
    count, unit = match.groups()
    return pd.Timedelta(int(count), unit=_UNITS[unit])


def infer_timeframe(index: pd.DatetimeIndex) -> str:
    """Guess the timeframe of a sorted index from the most common bar spacing.

    Daily data with weekends (most common spacing one day) gives ``"1d"``.
    """
    if len(index) < 2:
        raise ConfigError("cannot infer a timeframe from fewer than 2 timestamps; set it.")
    spacing = pd.Series(index[1:] - index[:-1]).mode().iloc[0]
    seconds = int(spacing.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
