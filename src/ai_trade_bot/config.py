"""Turn parameter blocks into frozen dataclasses, failing by name on a wrong key."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ai_trade_bot.errors import ConfigError


def parse_config[T](cls: type[T], block: Mapping[str, Any] | None, *, name: str) -> T:
    """Build the dataclass ``cls`` from a parameter block.

    Args:
        cls: A (frozen) dataclass type.
        block: The parameter mapping, e.g. ``params:ingestion``.
        name: The block's name, used in error messages.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: On an unknown key, a missing required key or a rejected value.
    """
    block = dict(block or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(block) - set(fields))
    if unknown:
        raise ConfigError(
            f"parameters '{name}': unknown key(s) {unknown}; expected some of {sorted(fields)}. "
            "Check the spelling in conf/base/parameters_*.yml."
        )
    missing = [
        n
        for n, f in fields.items()
        if n not in block
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"parameters '{name}': missing required key(s) {missing}.")
    try:
        return cls(**block)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"parameters '{name}': {exc}") from exc
