"""Alerts to the log, the state store (the dashboard shows them) and the notification
channels (:class:`ai_trade_bot.live.notify.Notifier`: Apprise URLs, rate-limited and
deduplicated, sent from a background thread)."""

from __future__ import annotations

import logging

from ai_trade_bot.live.notify import Notifier, mask
from ai_trade_bot.live.store import StateStore

logger = logging.getLogger(__name__)

KINDS = (
    "kill_switch",
    "fallback",  # the model dropped out (none, refused, failing): what trades instead
    "model_back",  # ... and came back
    "stale_feed",
    "bad_candle",  # a candle quarantined, with the rule it broke
    "gap",
    "limit_breach",
    "model_change",
    "order",
    "command",  # pause, resume, flatten applied
    "inference_timeout",  # the model took longer than live.inference_timeout: fallback
    "memory_cap",  # the process grew past live.memory_cap_mb: a clean stop
    "daily_summary",  # the UTC day's equity, trades and live accuracy
)


class Alerts:
    """Send alerts; a failing notification channel is logged, never raised (the runner
    keeps trading)."""

    def __init__(
        self, store: StateStore, symbol: str | None, *, notifier: Notifier | None = None
    ) -> None:
        self.store, self.symbol = store, symbol
        self.notifier = notifier
        self.sent: list[tuple[str, str]] = []

    def send(self, kind: str, message: str, symbol: str | None = None) -> None:
        who = symbol if symbol is not None else self.symbol
        message = mask(message)  # a notification URL's token never reaches the state
        logger.warning("alert %s [%s]: %s", kind, who, message)
        self.sent.append((kind, message))
        self.store.add_alert(who, kind, message)
        if self.notifier is not None:
            self.notifier.notify(kind, who, message)
