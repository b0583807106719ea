"""A small local HTTP server that answers like Binance's REST API: klines, and the
order endpoints the live runner's real-order path uses (market orders with client ids,
order lookup, open orders)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

EXCHANGE_INFO = {
    "timezone": "UTC",
    "serverTime": 0,
    "rateLimits": [],
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "status": "TRADING",
            "baseAsset": "BTC",
            "quoteAsset": "USDT",
            "baseAssetPrecision": 8,
            "quoteAssetPrecision": 8,
            "quotePrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "permissions": ["SPOT"],
            "permissionSets": [["SPOT"]],
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.01",
                    "maxPrice": "1000000",
                    "tickSize": "0.01",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00001",
                    "maxQty": "9000",
                    "stepSize": "0.00001",
                },
            ],
        }
    ],
}


def make_klines(
    start_ms: int, n: int, step_ms: int, *, seed: int = 0, skip: set[int] | None = None
) -> list[list]:
    """Binance kline rows; indices in ``skip`` are left out (a gap on the exchange)."""
    rng = np.random.default_rng(seed)
    close = 30000 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    rows = []
    for i in range(n):
        if skip and i in skip:
            continue
        o = close[i - 1] if i else close[0]
        c = close[i]
        h, low = max(o, c) * 1.001, min(o, c) * 0.999
        t = start_ms + i * step_ms
        rows.append(
            [
                t,
                f"{o:.2f}",
                f"{h:.2f}",
                f"{low:.2f}",
                f"{c:.2f}",
                "12.5",
                t + step_ms - 1,
                "1000.0",
                10,
                "6.0",
                "500.0",
                "0",
            ]
        )
    return rows


def klines_of(candles, *, end_ms: int | None = None) -> list[list]:
    """Binance kline rows with the prices and volumes of ``candles`` (a frame of open ...
    volume), one hour apart, the last one opening at ``end_ms`` (default: two hours before
    now, so that every one of them has closed)."""
    import time as _time

    step = 3_600_000
    end = end_ms if end_ms is not None else (int(_time.time() * 1000) // step - 2) * step
    start = end - step * (len(candles) - 1)
    rows = []
    for k, (o, h, low, c, v) in enumerate(
        candles[["open", "high", "low", "close", "volume"]].to_numpy()
    ):
        t = start + k * step
        rows.append([t, f"{o:.8f}", f"{h:.8f}", f"{low:.8f}", f"{c:.8f}", f"{v:.4f}",
                     t + step - 1, "0", 10, "0", "0", "0"])  # fmt: skip
    return rows


class FakeBinance:
    """Serves /api/v3/exchangeInfo and /api/v3/klines from an in-memory list of klines.

    ``plan`` maps the n-th klines request (0-based) to a behaviour: ``"429"`` answers
    Too Many Requests once; ``"overlap"`` starts the page ``overlap_bars`` before the
    requested start; ``"duplicate"`` repeats the page's last candle; ``"drop"`` closes the
    connection without an answer (a disconnect); ``"old"`` appends a candle from before
    the requested start (out of order); ``"skip:N"`` leaves out the page's first N candles
    (a gap that a later request fills).

    Orders (``POST /api/v3/order``) are kept by client order id; a second order with the
    same id is refused like Binance does; ``posted`` counts every order request per client
    order id, refused or not (a client that never resends has 1 for each). ``order_plan``
    maps the n-th order request to
    ``"slow"`` (the order is taken, the answer comes after ``slow_seconds``: a client
    timeout) or ``"open"`` (the order stays open instead of filling at once). ``DELETE
    /api/v3/order`` cancels an open one. ``accepted`` lists every order taken, in order.

    ``down = True`` is an outage: every request gets 503 until it is set back. With
    ``visible`` set, only the first ``visible`` klines exist; the second request in a row
    for candles from the first hidden one on reveals it (the first, an empty page, ends a
    history's paging), so a runner's feed gets its history and then one new closed candle
    every other poll.
    """

    def __init__(
        self,
        klines: list[list],
        plan: dict[int, str] | None = None,
        overlap_bars: int = 3,
        *,
        order_plan: dict[int, str] | None = None,
        slow_seconds: float = 1.5,
        by_symbol: dict[str, list[list]] | None = None,
    ) -> None:
        self.klines = klines
        # more markets (``"ETHUSDT": klines``, on the same times as ``klines``), each
        # listed in exchangeInfo like BTCUSDT
        self.by_symbol = by_symbol or {}
        self.exchange_info = dict(EXCHANGE_INFO)
        base = EXCHANGE_INFO["symbols"][0]
        self.exchange_info["symbols"] = [base] + [
            base | {"symbol": name, "baseAsset": name.removesuffix("USDT")}
            for name in self.by_symbol
            if name != base["symbol"]
        ]
        self.plan = plan or {}
        self.overlap_bars = overlap_bars
        self.order_plan = order_plan or {}
        self.slow_seconds = slow_seconds
        self.orders: dict[str, dict] = {}
        self.accepted: list[str] = []
        self.posted: Counter[str] = Counter()
        self.order_requests = 0
        self.requests: list[dict] = []
        self.down = False
        self.visible: int | None = None
        self._asked_beyond: int | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeBinance:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _klines_page(self, query: dict) -> tuple[int, object]:
        n = len([r for r in self.requests if r["path"].endswith("/klines")]) - 1
        behaviour = self.plan.get(n)
        if behaviour == "429":
            return 429, {"code": -1003, "msg": "Too many requests; current limit exceeded."}
        start = int(query.get("startTime", ["0"])[0])
        limit = int(query.get("limit", ["500"])[0])
        klines = self.by_symbol.get(query.get("symbol", [""])[0], self.klines)
        if self.visible is not None:
            if self.visible < len(klines) and start >= klines[self.visible][0]:
                if self._asked_beyond == start:
                    self.visible += 1  # polled again for the next candle: it has closed
                    self._asked_beyond = None
                else:
                    self._asked_beyond = start
            klines = klines[: self.visible]
        rows = [r for r in klines if r[0] >= start]
        if behaviour == "overlap":
            before = [r for r in klines if r[0] < start][-self.overlap_bars :]
            rows = before + rows
        page = rows[:limit]
        if behaviour == "duplicate" and page:
            page = [*page, page[-1]]
        if behaviour == "old":
            page = [*page, *[r for r in klines if r[0] < start][-1:]]
        if behaviour and behaviour.startswith("skip:"):
            page = page[int(behaviour.split(":")[1]) :]
        return 200, page

    def _order(self, query: dict) -> tuple[int, object]:
        n = self.order_requests
        self.order_requests += 1
        cid = query["newClientOrderId"][0]
        self.posted[cid] += 1
        if cid in self.orders:
            return 400, {"code": -2010, "msg": "Duplicate order sent."}
        shown = self.klines if self.visible is None else self.klines[: self.visible]
        price = float(shown[-1][4])
        qty = query["quantity"][0]
        status = "NEW" if self.order_plan.get(n) == "open" else "FILLED"
        order = {
            "symbol": query["symbol"][0],
            "orderId": len(self.orders) + 1,
            "orderListId": -1,
            "clientOrderId": cid,
            "transactTime": int(time.time() * 1000),
            "price": "0.00000000",
            "origQty": qty,
            "executedQty": qty if status == "FILLED" else "0.00000000",
            "cummulativeQuoteQty": f"{float(qty) * price:.8f}" if status == "FILLED" else "0",
            "status": status,
            "timeInForce": "GTC",
            "type": query["type"][0],
            "side": query["side"][0],
            "fills": [
                {"price": f"{price:.2f}", "qty": qty, "commission": "0", "commissionAsset": "USDT"}
            ]
            if status == "FILLED"
            else [],
        }
        self.orders[cid] = order
        self.accepted.append(cid)
        if self.order_plan.get(n) == "slow":
            time.sleep(self.slow_seconds)
        return 200, order

    def _cancel(self, query: dict) -> tuple[int, object]:
        cid = (query.get("origClientOrderId") or [None])[0]
        order = self.orders.get(cid)
        if order is None or order["status"] != "NEW":
            return 400, {"code": -2011, "msg": "Unknown order sent."}
        order["status"] = "CANCELED"
        return 200, order

    def _lookup(self, query: dict) -> tuple[int, object]:
        cid = (query.get("origClientOrderId") or [None])[0]
        if cid not in self.orders:
            return 400, {"code": -2013, "msg": "Order does not exist."}
        return 200, self.orders[cid]

    def _handler(self) -> Callable[..., BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def _answer(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    query |= parse_qs(self.rfile.read(length).decode())
                fake.requests.append(
                    {
                        "path": parts.path,
                        "query": query,
                        "method": method,
                        "headers": dict(self.headers.items()),
                    }
                )
                if fake.down:
                    status, body = 503, {"code": -1001, "msg": "Service unavailable."}
                elif parts.path.endswith("/exchangeInfo"):
                    status, body = 200, fake.exchange_info
                elif parts.path.endswith("/klines"):
                    if fake._next_is("drop"):
                        self.close_connection = True
                        return
                    status, body = fake._klines_page(query)
                elif parts.path.endswith("/openOrders"):
                    status = 200
                    body = [o for o in fake.orders.values() if o["status"] == "NEW"]
                elif parts.path.endswith("/order") and method == "POST":
                    status, body = fake._order(query)
                elif parts.path.endswith("/order") and method == "DELETE":
                    status, body = fake._cancel(query)
                elif parts.path.endswith("/order"):
                    status, body = fake._lookup(query)
                else:
                    status, body = 404, {"code": -1, "msg": f"unknown path {parts.path}"}
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def do_DELETE(self) -> None:
                self._answer("DELETE")

        return Handler

    def _next_is(self, behaviour: str) -> bool:
        """Whether the klines request being answered now has ``behaviour`` planned (it
        then still counts as a request)."""
        n = len([r for r in self.requests if r["path"].endswith("/klines")]) - 1
        return self.plan.get(n) == behaviour
