"""A small local HTTP server that answers like Binance's public REST API (klines)."""

from __future__ import annotations

import json
import threading
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


class FakeBinance:
    """Serves /api/v3/exchangeInfo and /api/v3/klines from an in-memory list of klines.

    ``plan`` maps the n-th klines request (0-based) to a behaviour: ``"429"`` answers
    Too Many Requests once; ``"overlap"`` starts the page ``overlap_bars`` before the
    requested start; ``"duplicate"`` repeats the page's last candle.
    """

    def __init__(
        self, klines: list[list], plan: dict[int, str] | None = None, overlap_bars: int = 3
    ) -> None:
        self.klines = klines
        self.plan = plan or {}
        self.overlap_bars = overlap_bars
        self.requests: list[dict] = []
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
        rows = [r for r in self.klines if r[0] >= start]
        if behaviour == "overlap":
            before = [r for r in self.klines if r[0] < start][-self.overlap_bars :]
            rows = before + rows
        page = rows[:limit]
        if behaviour == "duplicate" and page:
            page = [*page, page[-1]]
        return 200, page

    def _handler(self) -> Callable[..., BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                fake.requests.append({"path": parts.path, "query": query})
                if parts.path.endswith("/exchangeInfo"):
                    status, body = 200, EXCHANGE_INFO
                elif parts.path.endswith("/klines"):
                    status, body = fake._klines_page(query)
                else:
                    status, body = 404, {"code": -1, "msg": f"unknown path {parts.path}"}
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
