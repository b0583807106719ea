"""Where a runner's orders go: the :class:`Broker` protocol and its two venues.

- :class:`PaperBroker`, the default: the paper venue. It accepts every order; the
  execution core (the backtest's rules) fills it at the next candle's open. Its order book
  is the state file's orders table.
- :class:`CcxtBroker`, only with ``--live``: real orders on a ccxt exchange, idempotent by
  client order id. A submission that times out may still have reached the exchange, so
  before any retry the broker looks the order up by its client id; the exchange refuses a
  second order with the same id anyway.

Orders are written to the state store (under a UNIQUE client order id) before they are
sent; at start the runner reconciles the stored orders with the venue. A new venue is one
class with the four methods below (``tests/live/test_contracts.py`` runs every venue
through the same checks).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import yaml

from ai_trade_bot.errors import ConfigError, DataSourceError

if TYPE_CHECKING:
    from ai_trade_bot.live.store import StateStore

logger = logging.getLogger(__name__)

ENV_KEY, ENV_SECRET = "AI_TRADE_BOT_API_KEY", "AI_TRADE_BOT_API_SECRET"


@runtime_checkable
class Broker(Protocol):
    """A venue that takes an order under a client id and reports it, ccxt-style: a dict
    with ``clientOrderId``, ``status`` (``open``, ``closed`` when filled, ``canceled``),
    ``amount``, ``filled`` and ``average``."""

    paper: bool  # True: the execution core fills orders at the next open

    def submit(self, cid: str, side: str, amount: float) -> dict[str, Any]:
        """Send one order (a second order under the same ``cid`` is never made)."""
        ...

    def lookup(self, cid: str) -> dict[str, Any] | None:
        """The venue's record of the order with client id ``cid``, or None."""
        ...

    def cancel(self, cid: str) -> dict[str, Any] | None:
        """Cancel the open order ``cid``; None when the venue has no such open order."""
        ...

    def open_orders(self) -> list[dict[str, Any]]:
        """The orders still open at the venue."""
        ...


class PaperBroker:
    """The paper venue over the state file: it accepts every order (``open``); the runner's
    execution core fills or cancels it at the next candle's open, by the backtest's rules.
    Its book is the orders table (written through :class:`StateStore`)."""

    paper = True

    def __init__(self, store: StateStore, symbol: str) -> None:
        self.store, self.symbol = store, symbol

    def _report(self, row: dict[str, Any]) -> dict[str, Any]:
        status = {"new": "open", "filled": "closed", "cancelled": "canceled"}.get(
            row["status"], row["status"]
        )
        filled = row["amount"] if status == "closed" else 0.0
        return {
            "id": row["client_order_id"],
            "clientOrderId": row["client_order_id"],
            "status": status,
            "side": row["side"],
            "amount": row["amount"],
            "filled": filled,
            "average": None,
        }

    def _row(self, cid: str) -> dict[str, Any] | None:
        rows = self.store.orders(self.symbol)
        return next((o for o in rows if o["client_order_id"] == cid), None)

    def submit(self, cid: str, side: str, amount: float) -> dict[str, Any]:
        from ai_trade_bot.live.store import Order

        row = self._row(cid)
        if row is None:  # an order the runner did not write first (the contract test)
            self.store.add_order(
                Order(cid, self.symbol, 0, side, 0.0, float(amount), "open", "paper")
            )
        elif row["status"] == "new":
            self.store.update_order(cid, status="open")
        return self._report(self._row(cid))

    def lookup(self, cid: str) -> dict[str, Any] | None:
        row = self._row(cid)
        return None if row is None else self._report(row)

    def cancel(self, cid: str) -> dict[str, Any] | None:
        row = self._row(cid)
        if row is None or row["status"] not in ("new", "open"):
            return None
        self.store.update_order(cid, status="cancelled")
        return self._report(self._row(cid))

    def open_orders(self) -> list[dict[str, Any]]:
        rows = self.store.orders(self.symbol)
        return [self._report(r) for r in rows if r["status"] in ("new", "open")]


def client_order_id(model_version: str, symbol: str, ts: int, side: str) -> str:
    """Deterministic: the same decision always gets the same id (a restart cannot send a
    second order for it). Binance accepts up to 36 characters."""
    digest = hashlib.sha256(f"{model_version}|{symbol}|{ts}|{side}".encode()).hexdigest()
    return f"atb{digest[:32]}"


def load_credentials(conf_local: str | Path = "conf/local") -> dict[str, str]:
    """API key and secret from the environment or ``conf/local/credentials.yml``
    (``exchange: {apiKey: ..., secret: ...}``); never from conf/base, never logged."""
    key, secret = os.environ.get(ENV_KEY), os.environ.get(ENV_SECRET)
    if key and secret:
        return {"apiKey": key, "secret": secret}
    path = Path(conf_local) / "credentials.yml"
    if path.exists():
        block = (yaml.safe_load(path.read_text()) or {}).get("exchange") or {}
        if block.get("apiKey") and block.get("secret"):
            return {"apiKey": str(block["apiKey"]), "secret": str(block["secret"])}
    raise ConfigError(
        f"--live needs exchange credentials: set {ENV_KEY} and {ENV_SECRET}, or put "
        "exchange: {apiKey: ..., secret: ...} in conf/local/credentials.yml (never in "
        "conf/base, which is committed)."
    )


class RedactSecrets(logging.Filter):
    """Replace every secret string in log records with ``***``."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, ()
        return True


def redact_logs(secrets: list[str]) -> RedactSecrets:
    """Install a :class:`RedactSecrets` filter on every handler of the root logger."""
    redactor = RedactSecrets(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    return redactor


class CcxtBroker:
    """Market orders with client order ids on a ccxt exchange."""

    paper = False

    def __init__(
        self,
        exchange: Any,
        symbol: str,
        *,
        max_retries: int = 3,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.exchange, self.symbol = exchange, symbol
        self.max_retries, self.backoff = max_retries, backoff_seconds
        self._sleep = sleep

    def lookup(self, cid: str) -> dict[str, Any] | None:
        """The exchange's record of the order with client id ``cid``, or None."""
        import ccxt

        try:
            return self.exchange.fetch_order(None, self.symbol, {"origClientOrderId": cid})
        except ccxt.OrderNotFound:
            return None

    def submit(self, cid: str, side: str, amount: float) -> dict[str, Any]:
        """Send a market order once: after a timeout or a refused duplicate, the order is
        looked up by its client id before anything is sent again."""
        import ccxt

        for attempt in range(self.max_retries + 1):
            try:
                return self.exchange.create_order(
                    self.symbol, "market", side, amount, None, {"newClientOrderId": cid}
                )
            except ccxt.NetworkError as exc:  # timeouts included: it may have arrived
                found = self.lookup(cid)
                if found is not None:
                    logger.warning("order %s: %s, but the exchange has it", cid, type(exc).__name__)
                    return found
                if attempt == self.max_retries:
                    raise DataSourceError(f"order {cid}: gave up after {attempt} retries") from exc
                self._sleep(self.backoff * 2**attempt)
            except ccxt.InvalidOrder:
                found = self.lookup(cid)
                if found is not None:  # a duplicate of an order that did arrive
                    return found
                raise
        raise AssertionError("unreachable")

    def open_orders(self) -> list[dict[str, Any]]:
        return self.exchange.fetch_open_orders(self.symbol)

    def cancel(self, cid: str) -> dict[str, Any] | None:
        """Cancel the open order with client id ``cid``; None when the exchange has no
        such open order."""
        import ccxt

        try:
            return self.exchange.cancel_order(None, self.symbol, {"origClientOrderId": cid})
        except ccxt.OrderNotFound:
            return None


def signed_filled(order: dict[str, Any] | None, side: str) -> float:
    """The base-asset amount an exchange order record says was filled, signed by side
    (+ bought, - sold); 0 when nothing was."""
    if not order:
        return 0.0
    filled = order.get("filled")
    if filled is None:
        status = str(order.get("status") or "")
        filled = order.get("amount") if status == "closed" else 0.0
    try:
        amount = float(filled or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return amount if side == "buy" else -amount
