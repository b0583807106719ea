"""The status API and dashboard over the runner's SQLite state (FastAPI, served by uvicorn).

Read endpoints open the state file read-only (WAL lets them read while the runner writes):
``/health``, ``/status``, ``/positions``, ``/orders``, ``/decisions``, ``/equity``,
``/alerts``, ``/drift`` and ``/metrics`` (Prometheus text). ``POST /pause``, ``/resume``
and ``/flatten`` need ``Authorization: Bearer <token>`` (compared in constant time); they
queue a command the runner obeys between candles, recording which token asked (its name,
never a header the client chose) and when. With no token configured they are off. ``/`` is
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
import yaml
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

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


def _rows(db: sqlite3.Connection, query: str, args: tuple = ()) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute(query, args).fetchall()]


def _iso(ns: int | None) -> str | None:
    return None if ns is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))


class _CachedReader:
    """One read-only connection to the state file and the JSON of each read endpoint,
    rebuilt only after the runner commits (SQLite's ``PRAGMA data_version`` changes when
    another connection has written). Under a busy dashboard most requests are served from
    memory, which keeps the API's CPU away from the runner on small machines. Under uvicorn
    the ``async`` endpoints call it from the event loop's one thread; a lock keeps it safe
    where requests come from several threads (a test client runs each on its own)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: sqlite3.Connection | None = None
        self.version: int | None = None
        self.bodies: dict[tuple, bytes] = {}
        self.lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self.db is None:
            if not self.path.exists():
                raise HTTPException(503, f"no runner state at {self.path} yet")
            db = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, timeout=5, check_same_thread=False
            )
            db.row_factory = sqlite3.Row
            self.db = db
        return self.db

    def run(self, fn):
        with self.lock:
            try:
                return fn(self._connect())
            except sqlite3.Error:
                self.close()  # a replaced or damaged file: reopen on the next request
                raise

    def get(self, key: tuple, build) -> bytes:
        def fetch(db: sqlite3.Connection) -> bytes:
            version = db.execute("PRAGMA data_version").fetchone()[0]
            if version != self.version:
                self.bodies.clear()
                self.version = version
            body = self.bodies.get(key)
            if body is None:
                db.execute("BEGIN")  # one snapshot for every query behind this body
                try:
                    body = orjson.dumps(build(db))
                finally:
                    db.rollback()
                self.bodies[key] = body
            return body

        return self.run(fetch)

    def close(self) -> None:  # called under ``lock``
        if self.db is not None:
            self.db.close()
        self.db, self.version = None, None
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

    reader = _CachedReader(state_path)

    def cached(key: tuple, build) -> Response:
        """``build(db)``'s JSON, rebuilt only when the runner has committed since."""
        return Response(reader.get(key, build), media_type="application/json")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "state_file": str(state_path), "state_exists": state_path.exists()}

    @app.get("/status")
    async def status(symbol: str | None = None) -> Response:
        def build(db: sqlite3.Connection) -> dict[str, Any]:
            return _status(db, symbol)

        # liveness and age move with the clock: built on every request (cheap reads)
        return Response(orjson.dumps(reader.run(build)), media_type="application/json")

    @app.get("/positions")
    async def positions() -> Response:
        def build(db: sqlite3.Connection) -> list[dict[str, Any]]:
            return [r | {"time": _iso(r.pop("ts"))} for r in _rows(db, "SELECT * FROM positions")]

        return cached(("positions",), build)

    @app.get("/orders")
    async def orders(limit: int = 50) -> Response:
        def build(db: sqlite3.Connection) -> dict[str, Any]:
            recent = _rows(db, "SELECT * FROM orders ORDER BY rowid DESC LIMIT ?", (limit,))
            fills = _rows(db, "SELECT * FROM fills ORDER BY bar DESC, seq DESC LIMIT ?", (limit,))
            return {
                "orders": [r | {"time": _iso(r["ts"])} for r in recent],
                "fills": [r | {"time": _iso(r["ts"])} for r in fills],
            }

        return cached(("orders", limit), build)

    @app.get("/decisions")
    async def decisions(limit: int = 20) -> Response:
        def build(db: sqlite3.Connection) -> list[dict[str, Any]]:
            out = []
            for row in _rows(db, "SELECT * FROM decisions ORDER BY ts DESC LIMIT ?", (limit,)):
                votes = json.loads(row.pop("votes") or "{}")
                meta = {k: row.pop(k) for k in ("down", "flat", "up", "confidence", "disagreement")}
                out.append(row | {"time": _iso(row["ts"]), "votes": votes, "meta": meta})
            return out

        return cached(("decisions", limit), build)

    @app.get("/equity")
    async def equity(limit: int = 5000) -> Response:
        def build(db: sqlite3.Connection) -> dict[str, list]:
            query = "SELECT ts, equity, drawdown FROM equity ORDER BY ts DESC LIMIT ?"
            rows = _rows(db, query, (limit,))[::-1]
            return {
                "time": [_iso(r["ts"]) for r in rows],
                "equity": [r["equity"] for r in rows],
                "drawdown": [-r["drawdown"] for r in rows],
            }

        return cached(("equity", limit), build)

    @app.get("/alerts")
    async def alerts(limit: int = 20) -> Response:
        def build(db: sqlite3.Connection) -> list[dict[str, Any]]:
            return _rows(db, "SELECT * FROM alerts ORDER BY id DESC LIMIT ?", (limit,))

        return cached(("alerts", limit), build)

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
        text = reader.run(lambda db: generate_latest(_metrics_registry(db)))
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
        db = sqlite3.connect(state_path, timeout=30)
        try:
            symbols = [r[0] for r in db.execute("SELECT symbol FROM runner ORDER BY symbol")]
            if not symbols:
                raise HTTPException(503, "the runner has not started yet")
            if symbol is not None and symbol not in symbols:
                raise HTTPException(404, f"no runner trades {symbol!r}; it trades {symbols}")
            now = time.time()
            for target in [symbol] if symbol is not None else symbols:
                db.execute(
                    "INSERT INTO commands (symbol, command, requested_by, requested_at) "
                    "VALUES (?, ?, ?, ?)",
                    (target, name, f"token:{who}", now),
                )
            db.commit()
        finally:
            db.close()
        return {
            "queued": name,
            "symbols": [symbol] if symbol is not None else symbols,
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


def _status(db: sqlite3.Connection, symbol: str | None) -> dict[str, Any]:
    """What ``/status`` says of one symbol's runner (the one updated last without
    ``symbol``): its mode and model, what trades now, the last candle, feed, halts, equity,
    and whether the runner still runs and how old its last update is."""
    if symbol is None:
        rows = _rows(db, "SELECT * FROM runner ORDER BY updated_at DESC LIMIT 1")
    else:
        rows = _rows(db, "SELECT * FROM runner WHERE symbol = ?", (symbol,))
    if not rows:
        raise HTTPException(503 if symbol is None else 404, "no runner state for that yet")
    state = rows[0]
    position = _rows(db, "SELECT * FROM positions WHERE symbol = ?", (state["symbol"],))
    alerts = _rows(
        db,
        "SELECT kind, message, at FROM alerts WHERE symbol = ? OR symbol IS NULL "
        "ORDER BY id DESC LIMIT 1",
        (state["symbol"],),
    )
    halted = state["halted_reason"] or ("paused" if state["paused"] else None)
    running = state["stopped_at"] is None and _pid_running(state["pid"])
    updated = state["updated_at"]
    return {
        "symbol": state["symbol"],
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
        "last_alert": alerts[0] if alerts else None,
    }


def _metrics_registry(db: sqlite3.Connection) -> Any:
    """Prometheus metrics from the state: equity, position, decisions by reason, decision
    latency (histogram), feed lag and alerts."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    class StateCollector:
        def collect(self):
            state = db.execute("SELECT * FROM runner ORDER BY updated_at DESC LIMIT 1").fetchone()
            symbol = state["symbol"] if state else ""
            equity = GaugeMetricFamily(
                "ai_trade_bot_equity", "Equity at the last close", labels=["symbol"]
            )
            units = GaugeMetricFamily(
                "ai_trade_bot_position_units", "Open position (units)", labels=["symbol"]
            )
            for row in db.execute("SELECT symbol, equity, units FROM positions"):
                equity.add_metric([row["symbol"]], row["equity"])
                units.add_metric([row["symbol"]], row["units"])
            yield equity
            yield units
            reasons = CounterMetricFamily(
                "ai_trade_bot_decisions", "Decisions by reason", labels=["symbol", "reason"]
            )
            for row in db.execute("SELECT reason, COUNT(*) AS n FROM decisions GROUP BY reason"):
                reasons.add_metric([symbol, row["reason"] or ""], row["n"])
            yield reasons
            latencies = [r[0] for r in db.execute("SELECT latency_ms FROM decisions")]
            buckets, total = [], 0.0
            for bound in LATENCY_BUCKETS_MS:
                buckets.append((str(float(bound)), sum(1 for v in latencies if v <= bound)))
            buckets.append(("+Inf", len(latencies)))
            total = float(sum(latencies))
            yield HistogramMetricFamily(
                "ai_trade_bot_decision_latency_ms",
                "Candle processing time until the decision is written",
                buckets=buckets,
                sum_value=total,
            )
            lag = GaugeMetricFamily(
                "ai_trade_bot_feed_lag_seconds", "Seconds since the last candle's open time"
            )
            if state and state["last_ts"]:
                lag.add_metric([], time.time() - state["last_ts"] / 1e9)
            yield lag
            alerts = CounterMetricFamily("ai_trade_bot_alerts", "Alerts by kind", labels=["kind"])
            for row in db.execute("SELECT kind, COUNT(*) AS n FROM alerts GROUP BY kind"):
                alerts.add_metric([row["kind"]], row["n"])
            yield alerts

    registry = CollectorRegistry()
    registry.register(StateCollector())
    return registry


def serve(state_path: str | Path, *, host: str = "127.0.0.1", port: int = 8765, **kwargs) -> None:
    """Run the API with uvicorn (blocking)."""
    import uvicorn

    uvicorn.run(create_app(state_path, **kwargs), host=host, port=port, log_level="warning")
