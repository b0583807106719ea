"""The status API and dashboard over the runner's SQLite state (FastAPI, served by uvicorn).

Read endpoints go through :class:`ai_trade_bot.live.store.StateReader` (read-only; WAL lets
them read while the runner writes): ``/health``, ``/status``, ``/positions``, ``/orders``,
``/decisions`` (with each decision's explanation), ``/equity``, ``/alerts``, ``/drift``,
``/models`` (model health from the prediction ledger), ``/chart`` (candles, stops and
fills), ``/trades``, ``/ledger`` and ``/metrics`` (Prometheus text).
Each takes ``?symbol=``; without it, it answers for every symbol the state file holds.
``POST /pause``, ``/resume`` and ``/flatten`` (one symbol with ``?symbol=``, else all)
need ``Authorization: Bearer <token>`` (compared in constant time); they queue a command
the runner obeys between candles, recording which token asked (its name, never a header
the client chose) and when. With no token configured they are off. ``/`` is
the dashboard; its chart library is plotly.js from the installed ``plotly`` package (no
CDN).

Safe to open: only requests whose ``Host`` is 127.0.0.1, localhost or a configured name are
answered (400 otherwise: a DNS-rebinding page cannot reach the API), every response carries
a Content-Security-Policy that allows no inline script, and the page writes data as text.
"""

from __future__ import annotations

import hmac
import json
import os
import sqlite3
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import yaml
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ai_trade_bot.live.store import StateReader, queue_command

ENV_TOKEN = "AI_TRADE_BOT_API_TOKEN"
COMMANDS = ("pause", "resume", "flatten")
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
# no inline script or style attribute can run: data written into the page stays text
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


def load_tokens(conf_local: str | Path = "conf/local") -> dict[str, str]:
    """The API tokens by name: ``AI_TRADE_BOT_API_TOKEN`` (named ``env``), and from
    ``conf/local/credentials.yml`` ``api: {token: ...}`` (named ``api``) or ``api: {tokens:
    {alice: ..., ops: ...}}``. Empty: the mutating endpoints are off. The name is what the
    audit trail records."""
    tokens: dict[str, str] = {}
    path = Path(conf_local) / "credentials.yml"
    if path.exists():
        block = (yaml.safe_load(path.read_text()) or {}).get("api") or {}
        if block.get("token"):
            tokens["api"] = str(block["token"])
        for name, value in (block.get("tokens") or {}).items():
            if value:
                tokens[str(name)] = str(value)
    if os.environ.get(ENV_TOKEN):
        tokens["env"] = os.environ[ENV_TOKEN]
    return tokens


def _pid_running(pid: int | None) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie does not)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _iso(ns: int | None) -> str | None:
    return None if ns is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))


def _timed(rows: list[dict[str, Any]], key: str = "ts") -> list[dict[str, Any]]:
    return [r | {"time": _iso(r[key])} for r in rows]


class _CachedReader:
    """One :class:`StateReader` and the JSON of each read endpoint, rebuilt only after the
    runner commits (SQLite's ``PRAGMA data_version`` changes when another connection has
    written). Under a busy dashboard most requests are served from memory, which keeps the
    API's CPU away from the runner on small machines. Under uvicorn the ``async``
    endpoints call it from the event loop's one thread; a lock keeps it safe where requests
    come from several threads (a test client runs each on its own)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reader: StateReader | None = None
        self.version: int | None = None
        self.bodies: dict[tuple, bytes] = {}
        self.lock = threading.Lock()

    def _open(self) -> StateReader:
        if self.reader is None:
            if not self.path.exists():
                raise HTTPException(503, f"no runner state at {self.path} yet")
            self.reader = StateReader(self.path)
        return self.reader

    def run(self, fn):
        with self.lock:
            try:
                reader = self._open()
                with reader.snapshot():
                    return fn(reader)
            except sqlite3.Error:
                self.close()  # a replaced or damaged file: reopen on the next request
                raise

    def get(self, key: tuple, build) -> bytes:
        with self.lock:
            try:
                reader = self._open()
                version = reader.data_version()
                if version != self.version:
                    self.bodies.clear()
                    self.version = version
                body = self.bodies.get(key)
                if body is None:
                    with reader.snapshot():  # one snapshot for every query behind it
                        body = orjson.dumps(build(reader))
                    self.bodies[key] = body
                return body
            except sqlite3.Error:
                self.close()
                raise

    def close(self) -> None:  # called under ``lock``
        if self.reader is not None:
            self.reader.close()
        self.reader, self.version = None, None
        self.bodies.clear()


def create_app(
    state_path: str | Path,
    *,
    tokens: dict[str, str] | None = None,
    token: str | None = None,
    drift_dir: str | Path = "data/08_reporting",
    allowed_hosts: list[str] | tuple[str, ...] = (),
) -> Any:
    """The FastAPI application (see the module docstring). ``tokens`` maps a name to a
    token (``token`` alone is named ``api``); ``allowed_hosts`` are Host names answered
    besides the local ones."""
    state_path, drift_dir = Path(state_path), Path(drift_dir)
    tokens = dict(tokens or {})
    if token:
        tokens.setdefault("api", token)
    app = FastAPI(title="ai_trade_bot status", docs_url=None, redoc_url=None)
    app.add_middleware(
        TrustedHostMiddleware, allowed_hosts=[*LOCAL_HOSTS, *(h for h in allowed_hosts if h)]
    )

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    static = resources.files("ai_trade_bot.live").joinpath("static")
    page = static.joinpath("dashboard.html").read_text()
    page_js = static.joinpath("dashboard.js").read_bytes()
    plotly_js = (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()

    cache = _CachedReader(state_path)

    def cached(key: tuple, build) -> Response:
        """``build(reader)``'s JSON, rebuilt only when the runner has committed since."""
        return Response(cache.get(key, build), media_type="application/json")

    def known(reader: StateReader, symbol: str | None) -> None:
        if symbol is not None and symbol not in reader.symbols():
            raise HTTPException(404, f"no runner trades {symbol!r}; it trades {reader.symbols()}")

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Always answers: whether the state file exists, and what it holds (one-symbol
        runners, a universe book)."""
        out = {"status": "ok", "state_file": str(state_path), "state_exists": state_path.exists()}
        try:
            out |= cache.run(lambda r: {"runners": len(r.symbols()), "book": r.has_book()})
        except (HTTPException, sqlite3.Error):
            out |= {"runners": 0, "book": False}
        return out

    @app.get("/status")
    async def status(symbol: str | None = None) -> Response:
        """One symbol's status (``?symbol=``), or ``{"symbols": [...]}`` for all."""

        def build(reader: StateReader) -> dict[str, Any]:
            known(reader, symbol)
            rows = reader.runners(symbol)
            if not rows:
                raise HTTPException(503, "the runner has not started yet")
            statuses = [_status(reader, row) for row in rows]
            return statuses[0] if symbol is not None else {"symbols": statuses}

        # liveness and age move with the clock: built on every request (cheap reads)
        return Response(orjson.dumps(cache.run(build)), media_type="application/json")

    @app.get("/portfolio")
    async def portfolio(limit: int = 2000) -> Response:
        """A universe book (``ai-trade-bot live --universe``): equity, exposure by sector
        and cluster, the limits and how close each is, and every symbol's position,
        votes and reason."""

        def build(reader: StateReader) -> dict[str, Any]:
            data = reader.book(limit)
            if data is None:
                raise HTTPException(404, "no universe book in this state file")
            return _portfolio(data)

        return Response(orjson.dumps(cache.run(build)), media_type="application/json")

    @app.get("/positions")
    async def positions(symbol: str | None = None) -> Response:
        def build(reader: StateReader) -> list[dict[str, Any]]:
            known(reader, symbol)
            return [r | {"time": _iso(r.pop("ts"))} for r in reader.positions(symbol)]

        return cached(("positions", symbol), build)

    @app.get("/orders")
    async def orders(symbol: str | None = None, limit: int = 50) -> Response:
        def build(reader: StateReader) -> dict[str, Any]:
            known(reader, symbol)
            return {
                "orders": _timed(reader.orders(symbol, limit)),
                "fills": _timed(reader.fills(symbol, limit)),
            }

        return cached(("orders", symbol, limit), build)

    @app.get("/decisions")
    async def decisions(symbol: str | None = None, limit: int = 20) -> Response:
        def build(reader: StateReader) -> list[dict[str, Any]]:
            known(reader, symbol)
            out = []
            for row in reader.decisions(symbol, limit):
                votes = json.loads(row.pop("votes") or "{}")
                row["contributions"] = json.loads(row.get("contributions") or "{}")
                meta = {k: row.pop(k) for k in ("down", "flat", "up", "confidence", "disagreement")}
                out.append(row | {"time": _iso(row["ts"]), "votes": votes, "meta": meta})
            return out

        return cached(("decisions", symbol, limit), build)

    @app.get("/equity")
    async def equity(symbol: str | None = None, limit: int = 5000) -> Response:
        """Each symbol's equity and drawdown curve, ``{"symbols": {symbol: curve}}`` (one
        account per symbol: they are never drawn as one line)."""

        def build(reader: StateReader) -> dict[str, Any]:
            known(reader, symbol)
            curves: dict[str, dict[str, list]] = {}
            for row in reader.equity(symbol, limit):
                curve = curves.setdefault(row["symbol"], {"time": [], "equity": [], "drawdown": []})
                curve["time"].append(_iso(row["ts"]))
                curve["equity"].append(row["equity"])
                curve["drawdown"].append(-row["drawdown"])
            return {"symbols": curves}

        return cached(("equity", symbol, limit), build)

    @app.get("/models")
    async def models(window: int = 200) -> Response:
        """Model health per symbol and agent from the prediction ledger: live accuracy,
        log-loss, calibration and prediction drift over the last ``window`` scored
        predictions, beside the bundle's out-of-fold figures, and the time since training."""

        def build(reader: StateReader) -> dict[str, Any]:
            return _models(reader, window)

        return cached(("models", window), build)

    @app.get("/chart")
    async def chart(symbol: str, limit: int = 300) -> Response:
        """One symbol's candles, stops, targets and fills (the candlestick chart)."""

        def build(reader: StateReader) -> dict[str, Any]:
            known(reader, symbol)
            data = reader.chart(symbol, min(int(limit), 5000))
            candles = data["candles"]
            return {
                "symbol": symbol,
                "time": [_iso(r["ts"]) for r in candles],
                **{
                    k: [r[k] for r in candles]
                    for k in ("open", "high", "low", "close", "stop", "take")
                },
                "fills": [f | {"time": _iso(f.pop("ts"))} for f in data["fills"]],
            }

        return cached(("chart", symbol, limit), build)

    @app.get("/trades")
    async def trades(symbol: str | None = None, limit: int = 50) -> Response:
        """Closed round trips with their P&L, newest first."""

        def build(reader: StateReader) -> list[dict[str, Any]]:
            known(reader, symbol)
            return [
                t | {"entry_time": _iso(t["entry_ts"]), "exit_time": _iso(t["exit_ts"])}
                for t in reader.trades(symbol, min(int(limit), 5000))
            ]

        return cached(("trades", symbol, limit), build)

    @app.get("/ledger")
    async def ledger(symbol: str | None = None, limit: int = 100) -> Response:
        """The latest prediction ledger rows (every agent's and the meta-agent's)."""

        def build(reader: StateReader) -> list[dict[str, Any]]:
            known(reader, symbol)
            frame = reader.ledger(symbol, limit=min(int(limit), 10_000))
            rows = json.loads(frame.to_json(orient="records"))
            return [r | {"time": _iso(r["ts"]), "target_time": _iso(r["target_ts"])}
                    for r in rows][::-1]  # fmt: skip

        return cached(("ledger", symbol, limit), build)

    @app.get("/alerts")
    async def alerts(symbol: str | None = None, limit: int = 20) -> Response:
        def build(reader: StateReader) -> list[dict[str, Any]]:
            known(reader, symbol)
            return reader.alerts(symbol, limit)

        return cached(("alerts", symbol, limit), build)

    @app.get("/drift")
    def drift() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("drift_summary", "retrain_required"):
            path = drift_dir / f"{name}.json"
            out[name] = json.loads(path.read_text()) if path.exists() else None
        summary = out["drift_summary"] or {}
        out["status"] = (
            "no drift report yet"
            if not summary
            else ("drift" if summary.get("dataset_drift") else "no drift")
        )
        return out

    @app.get("/metrics")
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        # the feed lag moves with the clock, so the text is generated on every scrape
        text = cache.run(lambda reader: generate_latest(_metrics_registry(reader)))
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    def command(name: str, request: Request, symbol: str | None) -> dict[str, Any]:
        if not tokens:
            raise HTTPException(403, f"{name} is off: no API token configured ({ENV_TOKEN})")
        header = request.headers.get("authorization", "")
        given = (header[len("Bearer ") :] if header.startswith("Bearer ") else "").encode()
        who = None
        for identity, secret in tokens.items():  # every token compared, in constant time
            if hmac.compare_digest(given, secret.encode()) and who is None:
                who = identity
        if who is None:
            raise HTTPException(401, "a valid bearer token is required")
        if not state_path.exists():
            raise HTTPException(503, "the runner has not started yet")
        queued = queue_command(state_path, name, f"token:{who}", symbol)
        if not queued:
            if symbol is None:
                raise HTTPException(503, "the runner has not started yet")
            raise HTTPException(404, f"no runner trades {symbol!r}")
        return {
            "queued": name,
            "symbols": queued,
            "requested_by": f"token:{who}",
            "applied": "at the next candle",
        }

    for name in COMMANDS:

        def endpoint(
            request: Request, symbol: str | None = None, _name: str = name
        ) -> dict[str, Any]:
            return command(_name, request, symbol)

        app.post(f"/{name}")(endpoint)

    @app.get("/", response_class=HTMLResponse)
    def dashboard() -> str:
        return page

    @app.get("/static/plotly.min.js")
    def plotly() -> Response:
        return Response(plotly_js, media_type="application/javascript")

    @app.get("/static/dashboard.js")
    def dashboard_js() -> Response:
        return Response(page_js, media_type="application/javascript")

    @app.exception_handler(sqlite3.Error)
    def database_busy(request: Request, exc: sqlite3.Error) -> JSONResponse:
        return JSONResponse({"detail": f"state file unavailable: {exc}"}, status_code=503)

    return app


def _portfolio(data: dict[str, Any]) -> dict[str, Any]:
    """``/portfolio``'s body from :meth:`StateReader.book`."""
    book = data["book"]
    running = book["stopped_at"] is None and _pid_running(book["pid"])
    updated = book["updated_at"]
    equity = data["equity"]
    sectors = sorted({k for e in data["exposure"]["sector"] for k in e})
    limits = {
        name: v | {"closeness": (v["value"] / v["limit"]) if v["limit"] else None}
        for name, v in data["limits"].items()
    }
    symbols = []
    for position in data["positions"]:
        decision = data["decisions"].get(position["symbol"], {})
        symbols.append(
            {
                "symbol": position["symbol"],
                "sector": data["sectors"].get(position["symbol"]),
                "units": position["units"],
                "weight": position["weight"],
                "target": position["target"],
                "price": position["price"],
                "entry_price": position["entry_price"],
                "stop": position["stop"],
                "late": bool(position["late"]),
                "paused": bool(position["paused"]),
                "reason": position["reason"],
                "votes": {
                    k: decision.get(k)
                    for k in ("down", "flat", "up", "confidence", "expected_return")
                },
            }
        )
    return {
        "symbols": symbols,
        "mode": book["mode"],
        "model_version": book["model_version"],
        "model_state": book["model_state"],
        "last_candle": _iso(book["last_ts"]),
        "bar": book["bar"],
        "running": running,
        "runner": "running" if running else "stopped",
        "stop_reason": book["stop_reason"],
        "age_seconds": None if updated is None else max(time.time() - updated, 0.0),
        "equity": equity[-1]["equity"] if equity else None,
        "curve": {
            "time": [_iso(e["ts"]) for e in equity],
            "equity": [e["equity"] for e in equity],
            "drawdown": [e["drawdown"] for e in equity],
            "gross": [e["gross"] for e in equity],
        },
        "exposure": {
            "sector": {k: [e.get(k, 0.0) for e in data["exposure"]["sector"]] for k in sectors},
            "cluster": data["exposure"]["cluster"],
        },
        "limits": limits,
        "fills": _timed(data["fills"]),
        "trades": [t | {"time": _iso(t.pop("exit_ts"))} for t in data["trades"]],
    }


def _models(reader: StateReader, window: int) -> dict[str, Any]:
    """See ``GET /models``."""
    from ai_trade_bot.live.ledger import ledger_health

    infos = reader.model_infos()
    ledger = reader.ledger(None, limit=None)
    out = []
    now = time.time()
    runners = reader.symbols()
    # a book's symbols have no runner row: their ledger rows name them and their model
    booked = sorted(set(ledger["symbol"]) - set(runners))
    for symbol in [*runners, *booked]:
        model = infos.get(symbol) or {}
        info = model.get("info") or {}
        rows = ledger[ledger["symbol"] == symbol]
        health = ledger_health(rows, window, reference=info.get("oof"))
        trained = info.get("end")
        packaged = info.get("packaged_at")
        version = model.get("model_version")
        if version is None and len(rows):
            version = rows["model_version"].iloc[-1]
        out.append({
            "symbol": symbol,
            "model_version": version,
            "method": info.get("method"),
            "trained_from": info.get("start"),
            "trained_to": trained,
            "packaged_at": packaged,
            "seconds_since_packaged": (
                now - pd.Timestamp(packaged).timestamp() if packaged else None
            ),
            "agents": health,
        })  # fmt: skip
    return {"window": window, "symbols": out}


def _status(reader: StateReader, state: dict[str, Any]) -> dict[str, Any]:
    """What ``/status`` says of one symbol's runner: its mode and model, what trades now,
    the last candle, feed, halts, equity, and whether the runner still runs and how old its
    last update is."""
    symbol = state["symbol"]
    position = reader.positions(symbol)
    alerts = reader.alerts(symbol, 1)
    halted = state["halted_reason"] or ("paused" if state["paused"] else None)
    running = state["stopped_at"] is None and _pid_running(state["pid"])
    updated = state["updated_at"]
    return {
        "symbol": symbol,
        "timeframe": state["timeframe"],
        "mode": state["mode"],
        "model_version": state["model_version"],
        "model_state": state["model_state"] or "ok",
        "model_note": state["model_note"] or "",
        "trading": state["trading"] or "",
        "last_candle": _iso(state["last_ts"]),
        "bar": state["bar"],
        "feed_state": state["feed_state"] or "ok",
        "paused": bool(state["paused"]),
        "halted": halted is not None,
        "halted_reason": halted,
        "equity": position[0]["equity"] if position else None,
        "units": position[0]["units"] if position else None,
        "updated_at": updated,
        "age_seconds": None if updated is None else max(time.time() - updated, 0.0),
        "running": running,
        "runner": "running" if running else "stopped",
        "stop_reason": state["stop_reason"],
        "last_alert": {k: alerts[0][k] for k in ("kind", "message", "at")} if alerts else None,
    }


def _metrics_registry(reader: StateReader) -> Any:
    """Prometheus metrics from the state, per symbol: equity, position, decisions by
    reason, decision latency (histogram), feed lag; and alerts by kind."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    class StateCollector:
        def collect(self):
            equity = GaugeMetricFamily(
                "ai_trade_bot_equity", "Equity at the last close", labels=["symbol"]
            )
            units = GaugeMetricFamily(
                "ai_trade_bot_position_units", "Open position (units)", labels=["symbol"]
            )
            for row in reader.positions():
                equity.add_metric([row["symbol"]], row["equity"])
                units.add_metric([row["symbol"]], row["units"])
            yield equity
            yield units
            reasons = CounterMetricFamily(
                "ai_trade_bot_decisions", "Decisions by reason", labels=["symbol", "reason"]
            )
            for row in reader.counts("decisions", "reason"):
                reasons.add_metric([row["symbol"], row["value"] or ""], row["n"])
            yield reasons
            latency = HistogramMetricFamily(
                "ai_trade_bot_decision_latency_ms",
                "Candle processing time until the decision is written",
                labels=["symbol"],
            )
            by_symbol: dict[str, list[float]] = {}
            for row in reader.latencies():
                by_symbol.setdefault(row["symbol"], []).append(row["latency_ms"] or 0.0)
            for symbol, values in by_symbol.items():
                buckets = [
                    (str(float(bound)), sum(1 for v in values if v <= bound))
                    for bound in LATENCY_BUCKETS_MS
                ] + [("+Inf", len(values))]
                latency.add_metric([symbol], buckets, sum_value=float(sum(values)))
            yield latency
            lag = GaugeMetricFamily(
                "ai_trade_bot_feed_lag_seconds",
                "Seconds since the last candle's open time",
                labels=["symbol"],
            )
            for state in reader.runners():
                if state["last_ts"]:
                    lag.add_metric([state["symbol"]], time.time() - state["last_ts"] / 1e9)
            yield lag
            alerts = CounterMetricFamily(
                "ai_trade_bot_alerts", "Alerts by kind", labels=["symbol", "kind"]
            )
            for row in reader.counts("alerts", "kind"):
                alerts.add_metric([row["symbol"] or "", row["value"]], row["n"])
            yield alerts

    registry = CollectorRegistry()
    registry.register(StateCollector())
    return registry


def serve(state_path: str | Path, *, host: str = "127.0.0.1", port: int = 8765, **kwargs) -> None:
    """Run the API with uvicorn (blocking)."""
    import uvicorn

    uvicorn.run(create_app(state_path, **kwargs), host=host, port=port, log_level="warning")
