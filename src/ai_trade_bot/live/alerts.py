"""Alerts to the log, the state store (the dashboard shows them) and an optional webhook."""

from __future__ import annotations

import json
import logging
import urllib.request

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
)


class Alerts:
    """Send alerts; a failing webhook is logged, never raised (the runner keeps trading)."""

    def __init__(
        self,
        store: StateStore,
        symbol: str,
        *,
        webhook_url: str | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.store, self.symbol = store, symbol
        self.webhook_url, self.timeout = webhook_url, timeout
        self.sent: list[tuple[str, str]] = []

    def send(self, kind: str, message: str) -> None:
        logger.warning("alert %s [%s]: %s", kind, self.symbol, message)
        self.sent.append((kind, message))
        self.store.add_alert(self.symbol, kind, message)
        if self.webhook_url:
            body = json.dumps({"symbol": self.symbol, "kind": kind, "message": message}).encode()
            request = urllib.request.Request(
                self.webhook_url, data=body, headers={"Content-Type": "application/json"}
            )
            try:
                urllib.request.urlopen(request, timeout=self.timeout).close()
            except OSError as exc:
                logger.warning("alert webhook failed: %s", exc)
