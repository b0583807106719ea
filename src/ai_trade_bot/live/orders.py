"""The runner's order desk: the one order toward each clamped target, and what became of it.

- Paper (:class:`ai_trade_bot.live.broker.PaperBroker`): an order when the clamped target
  changes; the execution core fills it at the next open (the backtest's fill), and the
  candle's commit marks it filled, or cancelled when the rules filled nothing.
- Real (``--live``): the order moves **the position the exchange reported** (the sum of
  the fills it reported for this runner's orders) toward the clamped target, a fraction of
  the paper shadow's equity, at most ``max_order_notional``; a position of the wanted side
  is left alone within ``rebalance_threshold`` of equity, as the paper engine leaves it.
  The shadow books the fill at the next open only when the exchange reported it filled.
- Settling: an order whose fate is not recorded (a failed send, an order still open, one
  written before a crash but never sent) is looked up by its client id: a fill is recorded,
  an order still open is cancelled (a market order open a candle later is stale), one the
  venue never received is marked cancelled; it is never sent late.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.backtest.engine import EngineConfig
from ai_trade_bot.backtest.state import S_EQUITY, S_UNITS
from ai_trade_bot.live.alerts import Alerts
from ai_trade_bot.live.broker import Broker, client_order_id, signed_filled
from ai_trade_bot.live.store import Order, StateStore, ts_int

logger = logging.getLogger(__name__)

UNSETTLED = ("new", "failed", "open")  # orders whose fate the venue has to tell


class OrderDesk:
    """See the module docstring (one per runner and symbol)."""

    def __init__(self, store: StateStore, broker: Broker, symbol: str, alerts: Alerts) -> None:
        self.store, self.broker, self.symbol, self.alerts = store, broker, symbol, alerts

    @property
    def paper(self) -> bool:
        return bool(self.broker.paper)

    # -- the order for a candle --------------------------------------------------------------
    def order_for(
        self,
        version: str,
        ts: pd.Timestamp,
        target: float,
        engine: np.ndarray,
        close: float,
        *,
        previous: float | None,
        held: float,
        config: EngineConfig,
        note: str | None = None,
    ) -> Order | None:
        """The one order toward the clamped ``target`` at this close, or None."""
        equity = float(engine[S_EQUITY])
        if self.paper:
            if previous is not None and abs(target - previous) < 1e-12:
                return None
            delta = target * equity / close - float(engine[S_UNITS])
            if abs(delta) * close < 1e-9 * max(equity, 1.0):
                return None
            side = "buy" if delta > 0 else "sell"
            return self._order(version, ts, side, side, target, abs(delta), close)
        desired = target * equity / close if equity > 0 else 0.0
        delta = desired - held
        cap = config.max_order_notional
        step = config.rebalance_threshold * max(equity, 0.0)
        if cap is not None:
            step = min(step, cap)
            if abs(delta) * close > cap:
                delta = np.sign(delta) * cap / close
        notional = abs(delta) * close
        if notional < 1e-6 * max(equity, 1.0):  # dust: less than the exchange's lot
            return None
        if np.sign(desired) == np.sign(held) and notional <= step:
            return None
        side = "buy" if delta > 0 else "sell"
        kind = side
        if note == "reconcile":
            done = sum("reconcile" in (o["note"] or "") for o in self.store.orders(self.symbol))
            kind = f"{side}|reconcile|{done}"
        return self._order(version, ts, side, kind, target, abs(float(delta)), close, note)

    def _order(
        self,
        version: str,
        ts: pd.Timestamp,
        side: str,
        kind: str,
        target: float,
        amount: float,
        close: float,
        note: str | None = None,
    ) -> Order:
        return Order(
            client_order_id=client_order_id(version, self.symbol, ts_int(ts), kind),
            symbol=self.symbol,
            ts=ts_int(ts),
            side=side,
            target=target,
            amount=amount,
            status="new",
            mode="paper" if self.paper else "live",
            price=close,
            note=note,
        )

    def paper_fills(self, fills: list[dict[str, Any]]) -> dict[str, str]:
        """Paper orders from the previous close, filled at this open by the execution core
        or cancelled when the rules filled nothing (their status in the candle's commit)."""
        if not self.paper:
            return {}
        filled = any(f["kind"] in ("close", "open", "resize", "risk") for f in fills)
        return {
            o["client_order_id"]: "filled" if filled else "cancelled"
            for o in self.store.orders(self.symbol, "open")
        }

    # -- after the commit ----------------------------------------------------------------------
    def send(self, order: Order) -> bool:
        """Send a committed order; record what the venue reports. True when it filled (a
        paper order is accepted now and fills at the next open)."""
        cid = order.client_order_id
        try:
            report = self.broker.submit(cid, order.side, order.amount)
        except Exception as exc:  # recorded and alerted; settled against the venue later
            self.store.update_order(cid, status="failed", note=f"{type(exc).__name__}: {exc}"[:500])
            self.alerts.send("order", f"order {cid} failed: {exc}; the exchange is settled later")
            return False
        self.record(cid, report, order.side)
        status = str(report.get("status", "open"))
        logger.info(
            "order %s: %s %.8g %s -> %s (venue id %s)",
            cid,
            order.side,
            order.amount,
            self.symbol,
            status,
            report.get("id"),
        )
        return self.paper or status == "closed"

    def record(self, cid: str, report: dict[str, Any], side: str) -> None:
        values: dict[str, Any] = {"sent": 1, "status": str(report.get("status") or "open")}
        if not self.paper:
            values |= {
                "exchange_id": None if report.get("id") is None else str(report.get("id")),
                "filled": signed_filled(report, side),
                "average": report.get("average"),
            }
        self.store.update_order(cid, **values)

    # -- settling ----------------------------------------------------------------------------
    def unsettled(self) -> bool:
        return not self.paper and any(
            o["status"] in UNSETTLED for o in self.store.orders(self.symbol)
        )

    def settle(self) -> None:
        """Every order whose fate is not recorded, against the venue (see the module
        docstring). Paper orders only need accepting: their fate is the next fill."""
        for order in self.store.orders(self.symbol):
            if order["status"] not in UNSETTLED:
                continue
            cid = order["client_order_id"]
            if self.paper:
                if order["status"] == "new":
                    self.record(cid, self.broker.submit(cid, order["side"], order["amount"]),
                                order["side"])  # fmt: skip
                continue
            try:
                found = self.broker.lookup(cid)
                if found is not None and str(found.get("status")) == "open":
                    found = self.broker.cancel(cid) or found
            except Exception as exc:  # the venue is still down: try again later
                logger.warning("order %s: lookup failed: %s", cid, exc)
                continue
            if found is None:
                self.store.update_order(cid, status="cancelled", note="never reached the exchange")
            else:
                self.record(cid, found, order["side"])

    def exchange_units(self) -> float:
        """The position the exchange reported filling for this runner's orders."""
        return float(
            sum(
                o["filled"] or 0.0
                for o in self.store.orders(self.symbol)
                if o["mode"] == "live" and o["sent"]
            )
        )

    def strangers(self) -> None:
        """Alert on open orders at the venue that this runner did not make."""
        known = {o["client_order_id"] for o in self.store.orders(self.symbol)}
        for order in self.broker.open_orders():
            cid = order.get("clientOrderId")
            if cid not in known:
                self.alerts.send("order", f"open order {cid} on the exchange is not ours")
