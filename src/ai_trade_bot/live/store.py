"""The live runner's durable state in SQLite (WAL), keyed by symbol: the one module that
speaks SQL to it.

The writer (:class:`StateStore`, the runner's) commits each closed candle as one
transaction (:meth:`StateStore.commit_step` of a :class:`Step`): the candle, its features,
the decision (every agent's vote, the meta confidence, the reason, the model version), the
orders (written before they are sent, under a UNIQUE client order id), the fills, the
position, cash and equity, and the runner state needed to resume (the execution core's
state by field name with its layout's version, the carried feature and agent states).
After a crash the runner reloads all of it and resumes after the last committed candle.

Readers (the status API, drift) use :class:`StateReader`: read-only, every query scoped by
symbol, or over all symbols when none is named. WAL lets them read while the runner writes.
Commands (pause, resume, flatten) are queued with :func:`queue_command`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.backtest.state import state_from_record, state_record
from ai_trade_bot.data.normalise import OHLCV_COLUMNS
from ai_trade_bot.live.ledger import LEDGER_COLUMNS, Outcome, Prediction
from ai_trade_bot.modeling.scoring import EPS

SCHEMA_VERSION = 2  # PRAGMA user_version: 2 adds the columns of the live-safety work

SCHEMA = """
CREATE TABLE IF NOT EXISTS runner (
    symbol TEXT PRIMARY KEY,
    timeframe TEXT NOT NULL,
    mode TEXT NOT NULL,
    model_version TEXT,
    first_ts INTEGER,
    last_ts INTEGER,
    bar INTEGER NOT NULL DEFAULT -1,
    engine_state TEXT,
    carry TEXT,
    pending_target REAL,
    paused INTEGER NOT NULL DEFAULT 0,
    halted_reason TEXT,
    feed_state TEXT,
    updated_at REAL,
    model_state TEXT,
    model_note TEXT,
    decided_target REAL,
    exchange_units REAL,
    pid INTEGER,
    started_at REAL,
    stopped_at REAL,
    stop_reason TEXT,
    trading TEXT,
    model_info TEXT
);
CREATE TABLE IF NOT EXISTS candles (
    symbol TEXT NOT NULL, ts INTEGER NOT NULL,
    open REAL, high REAL, low REAL, close REAL, volume REAL,
    PRIMARY KEY (symbol, ts)
);
CREATE TABLE IF NOT EXISTS features (
    symbol TEXT NOT NULL, ts INTEGER NOT NULL, row BLOB NOT NULL,
    PRIMARY KEY (symbol, ts)
);
CREATE TABLE IF NOT EXISTS decisions (
    symbol TEXT NOT NULL, ts INTEGER NOT NULL,
    model_version TEXT, signal REAL, target REAL, reason TEXT,
    down REAL, flat REAL, up REAL, confidence REAL, disagreement REAL, informative REAL,
    magnitude REAL, votes TEXT, rsi REAL, latency_ms REAL,
    expected_return REAL, risk_score REAL, stop_sigmas REAL, contributions TEXT, rule TEXT,
    PRIMARY KEY (symbol, ts)
);
CREATE TABLE IF NOT EXISTS trades (
    symbol TEXT NOT NULL, entry_bar INTEGER NOT NULL, exit_bar INTEGER NOT NULL,
    seq INTEGER NOT NULL, exit_ts INTEGER NOT NULL, side REAL, units REAL,
    entry_price REAL, exit_price REAL, pnl REAL, fees REAL, reason TEXT,
    PRIMARY KEY (symbol, exit_bar, seq)
);
CREATE TABLE IF NOT EXISTS predictions (
    symbol TEXT NOT NULL, ts INTEGER NOT NULL, agent TEXT NOT NULL,
    target_ts INTEGER NOT NULL, horizon INTEGER NOT NULL, model_version TEXT,
    down REAL, flat REAL, up REAL, confidence REAL, expected_return REAL,
    outcome INTEGER, realised_return REAL, hit INTEGER, log_loss REAL, scored_ts INTEGER,
    PRIMARY KEY (symbol, ts, agent)
);
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL, ts INTEGER NOT NULL, side TEXT NOT NULL,
    target REAL, amount REAL, status TEXT NOT NULL, mode TEXT NOT NULL,
    exchange_id TEXT, created_at REAL, updated_at REAL, note TEXT,
    sent INTEGER NOT NULL DEFAULT 0, filled REAL, average REAL, price REAL
);
CREATE TABLE IF NOT EXISTS fills (
    symbol TEXT NOT NULL, ts INTEGER NOT NULL, bar INTEGER NOT NULL, seq INTEGER NOT NULL,
    client_order_id TEXT, units REAL, price REAL, fee REAL, kind TEXT,
    PRIMARY KEY (symbol, bar, seq)
);
CREATE TABLE IF NOT EXISTS equity (
    symbol TEXT NOT NULL, ts INTEGER NOT NULL,
    equity REAL, cash REAL, units REAL, price REAL, drawdown REAL, stop REAL, take REAL,
    PRIMARY KEY (symbol, ts)
);
CREATE TABLE IF NOT EXISTS positions (
    symbol TEXT PRIMARY KEY, units REAL, entry_price REAL, cash REAL, equity REAL,
    ts INTEGER
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL, symbol TEXT, kind TEXT NOT NULL, message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    symbol TEXT NOT NULL, ts INTEGER NOT NULL, rule TEXT NOT NULL,
    open REAL, high REAL, low REAL, close REAL, volume REAL, message TEXT, at REAL,
    PRIMARY KEY (symbol, ts, rule)
);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    symbol TEXT NOT NULL, command TEXT NOT NULL, requested_by TEXT, requested_at REAL,
    applied_at REAL, applied_ts INTEGER
);
"""


def ts_int(ts: pd.Timestamp) -> int:
    """A candle time as integer nanoseconds since the epoch (UTC)."""
    return int(pd.Timestamp(ts).value)


def ts_of(value: int) -> pd.Timestamp:
    return pd.Timestamp(int(value), tz="UTC")


_NUMERIC_DECISION_COLUMNS = frozenset(
    ("signal", "target", "down", "flat", "up", "confidence", "disagreement", "informative",
     "magnitude", "rsi", "latency_ms", "expected_return", "risk_score", "stop_sigmas")
)  # fmt: skip


# -- typed records ----------------------------------------------------------------------------
@dataclass
class Decision:
    """One candle's decision: the model's outputs, what the strategy and the clamp made of
    them, and why."""

    ts: int
    model_version: str
    signal: float | None
    target: float
    reason: str
    down: float | None = None
    flat: float | None = None
    up: float | None = None
    confidence: float | None = None
    disagreement: float | None = None
    informative: float | None = None
    magnitude: float | None = None
    votes: dict[str, dict[str, float | None]] = field(default_factory=dict)
    rsi: float | None = None
    latency_ms: float | None = None
    # the explanation (ai_trade_bot.live.explain): the meta-agent's expected log return, the
    # risk score (|target| x the volatility forecast: equity a one-sigma bar moves), the
    # stop's distance in forecast sigmas, each agent's contribution to the meta-agent's
    # up-minus-down edge, and the rule that decided the target
    expected_return: float | None = None
    risk_score: float | None = None
    stop_sigmas: float | None = None
    contributions: dict[str, float] = field(default_factory=dict)
    rule: str | None = None


@dataclass
class Fill:
    """A fill the execution core made on a bar (at the open, or a stop or target)."""

    bar: int
    seq: int
    client_order_id: str
    units: float
    price: float
    fee: float
    kind: str


@dataclass
class Order:
    """An order, written before it is sent (the client id is UNIQUE: never twice)."""

    client_order_id: str
    symbol: str
    ts: int
    side: str
    target: float
    amount: float
    status: str
    mode: str
    price: float | None = None
    note: str | None = None


@dataclass
class Account:
    """The account after a candle: equity, cash, the position and its entry price."""

    equity: float
    cash: float
    units: float
    price: float
    drawdown: float
    entry_price: float
    stop: float | None = None  # the open position's stop and target after the candle
    take: float | None = None


@dataclass
class Step:
    """Everything one closed candle changes, committed together (:meth:`StateStore.commit_step`)."""

    symbol: str
    ts: int
    candle: np.ndarray  # open, high, low, close, volume
    decision: Decision
    account: Account
    runner: dict[str, Any]  # runner fields; ``engine_state`` an array (stored by name)
    features: np.ndarray | None = None
    fills: list[Fill] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)  # round trips closed (TRADE_FIELDS)
    orders: list[Order] = field(default_factory=list)
    order_updates: dict[str, str] = field(default_factory=dict)  # client id -> status
    commands: list[int] = field(default_factory=list)  # ids applied at this candle
    # the prediction ledger (ai_trade_bot.live.ledger): this candle's forecasts, with their
    # target time and horizon, and the outcomes of earlier ones that became known
    predictions: list[Prediction] = field(default_factory=list)
    target_ts: int | None = None
    horizon: int = 1
    outcomes: list[Outcome] = field(default_factory=list)


class StateStore:
    """The runner's writer over one SQLite file (WAL) holding every symbol's state."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        _add_missing_columns(self.db)
        self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit: everything or nothing is committed."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- the runner's own row -------------------------------------------------------------
    def runner(self, symbol: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM runner WHERE symbol = ?", (symbol,)).fetchone()
        return dict(row) if row else None

    def engine_state(self, symbol: str) -> np.ndarray | None:
        """The execution core's state as the runner left it (older layouts migrated; an
        unknown one refused, naming both versions)."""
        row = self.db.execute(
            "SELECT engine_state FROM runner WHERE symbol = ?", (symbol,)
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return state_from_record(json.loads(row[0]), where=f"{self.path} ({symbol})")

    def save_runner(self, symbol: str, **values: Any) -> None:
        """Update the runner's row (one transaction)."""
        with self._transaction() as db:
            _save_runner(db, symbol, values)

    def start(
        self,
        symbol: str,
        history: pd.DataFrame,
        feature_rows: list[tuple[pd.Timestamp, np.ndarray]],
        runner: dict[str, Any],
    ) -> None:
        """A runner's first state: the history it starts from, the agents' first windows of
        feature rows (for a resume) and its row, in one transaction."""
        with self._transaction() as db:
            db.executemany(
                _INSERT_CANDLE,
                [
                    (symbol, ts_int(ts), *map(float, row))
                    for ts, row in zip(
                        history.index, history[list(OHLCV_COLUMNS)].to_numpy(), strict=True
                    )
                ],
            )
            for ts, row in feature_rows:
                _add_feature_row(db, symbol, ts_int(ts), row)
            _save_runner(db, symbol, runner)

    # -- one closed candle --------------------------------------------------------------------
    def commit_step(self, step: Step) -> None:
        """Everything one candle changes, in one transaction (see :class:`Step`)."""
        with self._transaction() as db:
            db.execute(_INSERT_CANDLE, (step.symbol, step.ts, *map(float, step.candle)))
            if step.features is not None:
                _add_feature_row(db, step.symbol, step.ts, step.features)
            decision = asdict(step.decision)
            decision["votes"] = json.dumps(decision["votes"])
            decision["contributions"] = json.dumps(decision["contributions"])
            columns = ", ".join(["symbol", *decision])
            marks = ", ".join("?" for _ in range(len(decision) + 1))
            db.execute(
                f"INSERT OR REPLACE INTO decisions ({columns}) VALUES ({marks})",
                (step.symbol, *decision.values()),
            )
            for fill in step.fills:
                db.execute(
                    "INSERT OR REPLACE INTO fills (symbol, ts, bar, seq, client_order_id, units, "
                    "price, fee, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (step.symbol, step.ts, fill.bar, fill.seq, fill.client_order_id, fill.units,
                     fill.price, fill.fee, fill.kind),
                )  # fmt: skip
            db.executemany(
                "INSERT OR REPLACE INTO trades VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (step.symbol, int(t["entry_bar"]), int(t["exit_bar"]), seq, step.ts,
                     t["side"], t["units"], t["entry_price"], t["exit_price"], t["pnl"],
                     t["fees"], t["reason"])
                    for seq, t in enumerate(step.trades)
                ],
            )  # fmt: skip
            for cid, status in step.order_updates.items():
                _update_order(db, cid, {"status": status})
            for order in step.orders:
                _add_order(db, order)
            account = step.account
            db.execute(
                "INSERT OR REPLACE INTO equity (symbol, ts, equity, cash, units, price, drawdown, "
                "stop, take) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (step.symbol, step.ts, account.equity, account.cash, account.units, account.price,
                 account.drawdown, _num(account.stop), _num(account.take)),
            )  # fmt: skip
            db.execute(
                "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?, ?)",
                (step.symbol, account.units, account.entry_price, account.cash, account.equity,
                 step.ts),
            )  # fmt: skip
            for command_id in step.commands:
                db.execute(
                    "UPDATE commands SET applied_at = ?, applied_ts = ? WHERE id = ?",
                    (time.time(), step.ts, command_id),
                )
            add_ledger(
                db, step.symbol, step.ts, step.decision.model_version, step.predictions,
                step.target_ts, step.horizon, step.outcomes,
            )  # fmt: skip
            _save_runner(db, step.symbol, step.runner)

    # -- what the runner reads back --------------------------------------------------------
    def candles(self, symbol: str, limit: int | None = None) -> pd.DataFrame:
        query = "SELECT ts, open, high, low, close, volume FROM candles WHERE symbol = ? "
        query += "ORDER BY ts DESC" + (f" LIMIT {int(limit)}" if limit else "")
        frame = pd.DataFrame(
            self.db.execute(query, (symbol,)).fetchall(),
            columns=["ts", *OHLCV_COLUMNS],
        ).iloc[::-1]
        index = pd.DatetimeIndex(pd.to_datetime(frame.pop("ts"), utc=True), name="timestamp")
        return frame.set_index(index).astype("float64")

    def feature_rows(self, symbol: str, columns: list[str], limit: int) -> pd.DataFrame:
        return _feature_frame(self.db, symbol, columns, limit)

    def decisions(self, symbol: str, limit: int) -> pd.DataFrame:
        """The last ``limit`` decisions, oldest first, indexed by candle time."""
        return _decision_frame(self.db, symbol, limit)

    def decision_arrays(
        self, symbol: str, limit: int, columns: tuple[str, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The last ``limit`` decisions' candle times (int64 ns) and ``columns`` (numeric
        ones; NULL is NaN) as a float array, oldest first."""
        unknown = set(columns) - _NUMERIC_DECISION_COLUMNS
        if unknown:
            raise ValueError(f"decisions: not numeric columns {sorted(unknown)}")
        found = self.db.execute(
            f"SELECT ts, {', '.join(columns)} FROM decisions WHERE symbol = ? "
            "ORDER BY ts DESC LIMIT ?",
            (symbol, int(limit)),
        ).fetchall()[::-1]
        times = np.array([r[0] for r in found], dtype=np.int64)
        values = np.array([tuple(r)[1:] for r in found], dtype=np.float64)
        return times, values.reshape(len(found), len(columns))

    def orders(self, symbol: str, status: str | None = None) -> list[dict[str, Any]]:
        return _orders(self.db, symbol, status)

    def ledger(self, symbol: str | None = None, **query: Any) -> pd.DataFrame:
        """The prediction ledger (see :func:`ledger_frame`)."""
        return ledger_frame(self.db, symbol, **query)

    def trades(self, symbol: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Closed round trips, newest first (see :class:`StateReader`)."""
        return _trades(self.db, symbol, limit)

    def day_summary(self, symbol: str, start: int, end: int) -> dict[str, Any]:
        """One symbol's candles from ``start`` to before ``end`` (int ns): equity at the
        first and last, round trips closed and their P&L, the meta-agent's predictions
        scored and their hit rate."""
        db = self.db
        equity = db.execute(
            "SELECT equity FROM equity WHERE symbol = ? AND ts < ? ORDER BY ts DESC LIMIT 1",
            (symbol, start),
        ).fetchone()
        last = db.execute(
            "SELECT equity, units FROM equity WHERE symbol = ? AND ts >= ? AND ts < ? "
            "ORDER BY ts DESC LIMIT 1",
            (symbol, start, end),
        ).fetchone()
        trades = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(pnl), 0) FROM trades WHERE symbol = ? AND "
            "exit_ts >= ? AND exit_ts < ?",
            (symbol, start, end),
        ).fetchone()
        scored = db.execute(
            "SELECT COUNT(*), AVG(hit), AVG(log_loss) FROM predictions WHERE symbol = ? AND "
            "agent = 'meta' AND scored_ts >= ? AND scored_ts < ?",
            (symbol, start, end),
        ).fetchone()
        return {
            "equity_start": None if equity is None else equity[0],
            "equity_end": None if last is None else last[0],
            "units": None if last is None else last[1],
            "trades": int(trades[0]),
            "pnl": float(trades[1]),
            "scored": int(scored[0]),
            "accuracy": scored[1],
            "log_loss": scored[2],
        }

    def scored_upto(self, symbol: str) -> int | None:
        """The latest candle time whose predictions are scored (a resume scores after it)."""
        row = self.db.execute(
            "SELECT MAX(ts) FROM predictions WHERE symbol = ? AND outcome IS NOT NULL", (symbol,)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def add_order(self, order: Order) -> bool:
        """Insert an order; False when its client order id exists already (never twice)."""
        with self._transaction() as db:
            return _add_order(db, order)

    def update_order(self, client_order_id: str, **values: Any) -> None:
        with self._transaction() as db:
            _update_order(db, client_order_id, values)

    def fills(self, symbol: str) -> list[dict[str, Any]]:
        return _rows(self.db, "SELECT * FROM fills WHERE symbol = ? ORDER BY bar, seq", (symbol,))

    def equity(self, symbol: str) -> pd.DataFrame:
        frame = pd.DataFrame(
            _rows(self.db, "SELECT * FROM equity WHERE symbol = ? ORDER BY ts", (symbol,))
        )
        if not frame.empty:
            frame.index = pd.DatetimeIndex([ts_of(t) for t in frame["ts"]], name="timestamp")
        return frame

    # -- quarantine, alerts, commands ---------------------------------------------------------
    def quarantine(self, symbol: str, ts: int, rule: str, values: np.ndarray, message: str) -> bool:
        """Keep a candle the runner refused, with the rule it broke; False when it was
        quarantined for that rule already (a replay after a restart)."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (symbol, int(ts), rule, *(_num(v) for v in values), message, time.time()),
            )
        return cursor.rowcount == 1

    def quarantined(self, symbol: str) -> list[dict[str, Any]]:
        return _rows(
            self.db, "SELECT * FROM quarantine WHERE symbol = ? ORDER BY at, ts", (symbol,)
        )

    def add_alert(self, symbol: str | None, kind: str, message: str) -> None:
        self.db.execute(
            "INSERT INTO alerts (at, symbol, kind, message) VALUES (?, ?, ?, ?)",
            (time.time(), symbol, kind, message),
        )

    def alerts(self, symbol: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return _alerts(self.db, symbol, limit)

    def pending_commands(self, symbol: str) -> list[dict[str, Any]]:
        return _rows(
            self.db,
            "SELECT * FROM commands WHERE symbol = ? AND applied_at IS NULL ORDER BY id",
            (symbol,),
        )


class StateReader:
    """Read-only queries over a state file, each scoped by symbol (or over every symbol
    when ``symbol`` is None): what the status API and drift read."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db = sqlite3.connect(
            f"file:{self.path}?mode=ro", uri=True, timeout=5, check_same_thread=False
        )
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[StateReader]:
        """Every query inside sees one committed state."""
        self.db.execute("BEGIN")
        try:
            yield self
        finally:
            self.db.rollback()

    def data_version(self) -> int:
        """Changes when another connection (the runner) has committed."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def symbols(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT symbol FROM runner ORDER BY symbol")]

    def has_book(self) -> bool:
        """Whether a universe book has started in this file."""
        has = self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'book'"
        ).fetchone()
        return bool(has) and self.db.execute("SELECT 1 FROM book").fetchone() is not None

    def book(self, limit: int = 2000) -> dict[str, Any] | None:
        """A universe book's state (:mod:`ai_trade_bot.live.book`), or None: its row, the
        equity and exposure by sector over the last ``limit`` steps, the limits and how
        close each is, each symbol's position and latest decision, recent fills, trades."""
        has = self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'book'"
        ).fetchone()
        row = self.db.execute("SELECT * FROM book WHERE id = 1").fetchone() if has else None
        if row is None:
            return None
        row = dict(row)
        for key in ("account", "states", "pending", "last_close"):
            row.pop(key)
        equity = _rows(self.db, f"SELECT * FROM (SELECT * FROM book_equity ORDER BY ts DESC "
                       f"LIMIT {int(limit)}) ORDER BY ts")  # fmt: skip
        sectors = dict(self.db.execute("SELECT symbol, sector FROM book_symbols").fetchall())
        positions = _rows(self.db, "SELECT * FROM book_positions ORDER BY symbol")
        latest = {
            r["symbol"]: r
            for r in _rows(
                self.db,
                "SELECT d.* FROM book_decisions d JOIN (SELECT symbol, MAX(ts) AS ts FROM "
                "book_decisions GROUP BY symbol) m ON d.symbol = m.symbol AND d.ts = m.ts",
            )
        }
        last = equity[-1] if equity else None
        return {
            "book": row,
            "equity": equity,
            "sectors": sectors,
            "limits": json.loads(last["limits"]) if last else {},
            "exposure": {
                "sector": [json.loads(e["by_sector"]) for e in equity],
                "cluster": json.loads(last["by_cluster"]) if last else {},
            },
            "positions": positions,
            "decisions": latest,
            "fills": _rows(self.db, "SELECT * FROM book_fills ORDER BY ts DESC, seq LIMIT 20"),
            "trades": _rows(self.db, "SELECT * FROM book_trades ORDER BY exit_ts DESC LIMIT 20"),
        }

    def runners(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return _scoped(self.db, "SELECT * FROM runner", symbol, "symbol")

    def positions(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return _scoped(self.db, "SELECT * FROM positions", symbol, "symbol")

    def orders(self, symbol: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return _scoped(self.db, "SELECT * FROM orders", symbol, "rowid DESC", limit)

    def fills(self, symbol: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return _scoped(self.db, "SELECT * FROM fills", symbol, "ts DESC, seq DESC", limit)

    def decisions(self, symbol: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        return _scoped(self.db, "SELECT * FROM decisions", symbol, "ts DESC", limit)

    def equity(self, symbol: str | None = None, limit: int = 5000) -> list[dict[str, Any]]:
        """Each symbol's last ``limit`` equity rows, oldest first."""
        rows = []
        for name in [symbol] if symbol is not None else self.symbols():
            query = "SELECT * FROM equity WHERE symbol = ? ORDER BY ts DESC LIMIT ?"
            rows += _rows(self.db, query, (name, int(limit)))[::-1]
        return rows

    def alerts(self, symbol: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        return _alerts(self.db, symbol, limit)

    def counts(self, table: str, column: str) -> list[dict[str, Any]]:
        """Rows per symbol and ``column`` value (decisions by reason, alerts by kind)."""
        if (table, column) not in (("decisions", "reason"), ("alerts", "kind")):
            raise ValueError(f"no counts of {table}.{column}")
        return _rows(
            self.db,
            f"SELECT symbol, {column} AS value, COUNT(*) AS n FROM {table} GROUP BY symbol, "
            f"{column}",
        )

    def latencies(self) -> list[dict[str, Any]]:
        return _rows(self.db, "SELECT symbol, latency_ms FROM decisions")

    def ledger(self, symbol: str | None = None, **query: Any) -> pd.DataFrame:
        """The prediction ledger (see :func:`ledger_frame`)."""
        return ledger_frame(self.db, symbol, **query)

    def trades(self, symbol: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Closed round trips (the execution core's, as the backtest records them), newest
        first, with their entry time."""
        return _trades(self.db, symbol, limit)

    def chart(self, symbol: str, limit: int = 300) -> dict[str, Any]:
        """One symbol's last ``limit`` candles with the stop and target after each, and
        the fills among them: what the candlestick chart draws."""
        rows = _rows(
            self.db,
            "SELECT * FROM (SELECT c.ts, c.open, c.high, c.low, c.close, e.stop, e.take "
            "FROM candles c LEFT JOIN equity e ON e.symbol = c.symbol AND e.ts = c.ts "
            "WHERE c.symbol = ? ORDER BY c.ts DESC LIMIT ?) ORDER BY ts",
            (symbol, int(limit)),
        )
        first = rows[0]["ts"] if rows else 0
        fills = _rows(
            self.db,
            "SELECT ts, units, price, kind FROM fills WHERE symbol = ? AND ts >= ? "
            "ORDER BY ts, seq",
            (symbol, first),
        )
        return {"candles": rows, "fills": fills}

    def model_infos(self) -> dict[str, dict[str, Any]]:
        """Each runner's model version and the bundle's training facts (JSON parsed)."""
        out = {}
        for row in _rows(self.db, "SELECT symbol, model_version, model_info FROM runner"):
            info = json.loads(row["model_info"]) if row.get("model_info") else None
            out[row["symbol"]] = {"model_version": row["model_version"], "info": info}
        return out

    def book_trades(
        self, symbol: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """A universe book's closed round trips (as :meth:`trades`)."""
        if not self.has_book():
            return []
        return _trades(self.db, symbol, limit, "book_trades", "book_fills")

    def feature_rows(self, symbol: str, columns: list[str], limit: int) -> pd.DataFrame:
        return _feature_frame(self.db, symbol, columns, limit)

    def decision_frame(self, symbol: str, limit: int) -> pd.DataFrame:
        """The last ``limit`` decisions, oldest first, indexed by candle time."""
        return _decision_frame(self.db, symbol, limit)

    def equity_frame(self, symbol: str, limit: int) -> pd.Series:
        rows = self.equity(symbol, limit)
        return pd.Series(
            [r["equity"] for r in rows],
            index=pd.DatetimeIndex([ts_of(r["ts"]) for r in rows], name="timestamp"),
            name="equity",
            dtype="float64",
        )


def queue_command(
    path: str | Path, command: str, requested_by: str, symbol: str | None = None
) -> list[str]:
    """Queue ``command`` for ``symbol`` (every symbol's runner when None); the runners obey
    it between candles. Returns the symbols it was queued for."""
    db = sqlite3.connect(path, timeout=30)
    try:
        symbols = [r[0] for r in db.execute("SELECT symbol FROM runner ORDER BY symbol")]
        book = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'book_symbols'"
        ).fetchone()
        if book:  # a universe book's symbols (ai_trade_bot.live.book) take commands too
            symbols += [r[0] for r in db.execute("SELECT symbol FROM book_symbols ORDER BY symbol")]
        targets = symbols if symbol is None else [s for s in symbols if s == symbol]
        now = time.time()
        db.executemany(
            "INSERT INTO commands (symbol, command, requested_by, requested_at) "
            "VALUES (?, ?, ?, ?)",
            [(s, command, requested_by, now) for s in targets],
        )
        db.commit()
    finally:
        db.close()
    return targets


# -- the prediction ledger ----------------------------------------------------------------------
_SCORE = """
UPDATE predictions SET outcome = :outcome, realised_return = :ret, scored_ts = :scored,
    hit = ((CASE WHEN down >= flat AND down >= up THEN 0 WHEN flat >= up THEN 1 ELSE 2 END)
           = :outcome),
    log_loss = -ln(MIN(MAX(CASE :outcome WHEN 0 THEN down WHEN 1 THEN flat ELSE up END,
                           :eps), 1.0))
WHERE symbol = :symbol AND ts = :ts AND outcome IS NULL AND up IS NOT NULL
"""


def add_ledger(
    db: sqlite3.Connection,
    symbol: str,
    ts: int,
    model_version: str,
    predictions: list[Prediction],
    target_ts: int | None,
    horizon: int,
    outcomes: list[Outcome],
) -> None:
    """One candle's forecasts and the outcomes that became known at it (inside the
    candle's transaction). Hits and log-losses are computed by SQL on the stored
    probabilities, as :func:`ai_trade_bot.live.ledger.score` computes them."""
    db.executemany(
        "INSERT OR REPLACE INTO predictions (symbol, ts, agent, target_ts, horizon, "
        "model_version, down, flat, up, confidence, expected_return) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (symbol, int(ts), p.agent, int(target_ts if target_ts is not None else ts),
             int(horizon), model_version, p.down, p.flat, p.up, p.confidence, p.expected_return)
            for p in predictions
        ],
    )  # fmt: skip
    db.executemany(
        _SCORE,
        [
            {"outcome": o.outcome, "ret": o.realised_return, "scored": o.scored_ts,
             "eps": EPS, "symbol": symbol, "ts": o.ts}
            for o in outcomes
        ],
    )  # fmt: skip


def ledger_frame(
    db: sqlite3.Connection,
    symbol: str | None = None,
    *,
    since: int | None = None,
    agent: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Ledger rows (:data:`ai_trade_bot.live.ledger.LEDGER_COLUMNS`), oldest first:
    one symbol's or every symbol's, from candle time ``since`` (int ns), one agent's, the
    last ``limit``."""
    where, args = [], []
    for column, value, op in (("symbol", symbol, "="), ("ts", since, ">="), ("agent", agent, "=")):
        if value is not None:
            where.append(f"{column} {op} ?")
            args.append(value)
    query = f"SELECT {', '.join(LEDGER_COLUMNS)} FROM predictions"
    query += (" WHERE " + " AND ".join(where)) if where else ""
    query += " ORDER BY ts DESC, symbol, agent"
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    rows = db.execute(query, tuple(args)).fetchall()[::-1]
    return pd.DataFrame([tuple(r) for r in rows], columns=list(LEDGER_COLUMNS))


# -- the SQL behind both ------------------------------------------------------------------------
def _rows(db: sqlite3.Connection, query: str, args: tuple = ()) -> list[dict[str, Any]]:
    cursor = db.execute(query, args)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _scoped(
    db: sqlite3.Connection,
    select: str,
    symbol: str | None,
    order: str,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    query = select + (" WHERE symbol = ?" if symbol is not None else "") + f" ORDER BY {order}"
    args: tuple = (symbol,) if symbol is not None else ()
    if limit is not None:
        query += " LIMIT ?"
        args += (int(limit),)
    return _rows(db, query, args)


def _trades(
    db: sqlite3.Connection,
    symbol: str | None,
    limit: int | None,
    table: str = "trades",
    fills: str = "fills",
) -> list[dict[str, Any]]:
    """Closed round trips, newest first, with the entry candle's time (its fill's) and the
    return on the entry notional."""
    query = (
        f"SELECT t.*, (SELECT MIN(f.ts) FROM {fills} f WHERE f.symbol = t.symbol AND "
        "f.bar = t.entry_bar) AS entry_ts, t.pnl / NULLIF(t.units * t.entry_price, 0) AS "
        f'"return" FROM {table} t'
    )
    args: tuple = ()
    if symbol is not None:
        query, args = query + " WHERE t.symbol = ?", (symbol,)
    query += " ORDER BY t.exit_ts DESC, t.symbol"
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    return _rows(db, query, args)


def _alerts(db: sqlite3.Connection, symbol: str | None, limit: int) -> list[dict[str, Any]]:
    """A symbol's alerts and the ones about every symbol (symbol NULL), newest first."""
    if symbol is None:
        return _rows(db, "SELECT * FROM alerts ORDER BY id DESC LIMIT ?", (int(limit),))
    return _rows(
        db,
        "SELECT * FROM alerts WHERE symbol = ? OR symbol IS NULL ORDER BY id DESC LIMIT ?",
        (symbol, int(limit)),
    )


def _orders(db: sqlite3.Connection, symbol: str, status: str | None) -> list[dict[str, Any]]:
    query = "SELECT * FROM orders WHERE symbol = ?"
    args: tuple[Any, ...] = (symbol,)
    if status:
        query += " AND status = ?"
        args += (status,)
    return _rows(db, query + " ORDER BY ts, rowid", args)


def _add_order(db: sqlite3.Connection, order: Order) -> bool:
    now = time.time()
    values = asdict(order) | {"created_at": now, "updated_at": now}
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    cursor = db.execute(
        f"INSERT OR IGNORE INTO orders ({columns}) VALUES ({marks})", tuple(values.values())
    )
    return cursor.rowcount == 1


def _update_order(db: sqlite3.Connection, client_order_id: str, values: dict[str, Any]) -> None:
    values = values | {"updated_at": time.time()}
    sets = ", ".join(f"{k} = ?" for k in values)
    db.execute(
        f"UPDATE orders SET {sets} WHERE client_order_id = ?", (*values.values(), client_order_id)
    )


def _save_runner(db: sqlite3.Connection, symbol: str, values: dict[str, Any]) -> None:
    values = dict(values)
    if isinstance(values.get("engine_state"), np.ndarray):
        values["engine_state"] = state_record(values["engine_state"])
    values = {k: _json(v) for k, v in values.items()} | {"updated_at": time.time()}
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    updates = ", ".join(f"{k} = excluded.{k}" for k in values)
    db.execute(
        f"INSERT INTO runner (symbol, {columns}) VALUES (?, {marks}) "
        f"ON CONFLICT(symbol) DO UPDATE SET {updates}",
        (symbol, *values.values()),
    )


def _add_feature_row(db: sqlite3.Connection, symbol: str, ts: int, row: np.ndarray) -> None:
    db.execute(
        "INSERT OR REPLACE INTO features VALUES (?, ?, ?)",
        (symbol, int(ts), np.asarray(row, dtype=np.float64).tobytes()),
    )


def _feature_frame(
    db: sqlite3.Connection, symbol: str, columns: list[str], limit: int
) -> pd.DataFrame:
    rows = db.execute(
        "SELECT ts, row FROM features WHERE symbol = ? ORDER BY ts DESC LIMIT ?",
        (symbol, int(limit)),
    ).fetchall()[::-1]
    index = pd.DatetimeIndex([ts_of(r[0]) for r in rows], name="timestamp")
    values = np.array([np.frombuffer(r[1], dtype=np.float64) for r in rows])
    return pd.DataFrame(values.reshape(len(rows), len(columns)), index=index, columns=columns)


def _decision_frame(db: sqlite3.Connection, symbol: str, limit: int) -> pd.DataFrame:
    rows = _rows(
        db,
        "SELECT * FROM decisions WHERE symbol = ? ORDER BY ts DESC LIMIT ?",
        (symbol, int(limit)),
    )[::-1]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame.index = pd.DatetimeIndex([ts_of(t) for t in frame["ts"]], name="timestamp")
    return frame


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Columns the schema gained since a state file was written (added empty; SQLite's
    CREATE TABLE IF NOT EXISTS leaves an existing table as it is)."""
    for statement in SCHEMA.split(";"):
        if "CREATE TABLE" not in statement:
            continue
        table = statement.split("EXISTS", 1)[1].split("(", 1)[0].strip()
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        body = statement.split("(", 1)[1].rsplit(")", 1)[0]
        for part in body.replace("\n", " ").split(","):
            words = part.split()
            column = words[0] if len(words) >= 2 and words[0].isidentifier() else None
            if column and column.upper() not in ("PRIMARY", "UNIQUE") and column not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {' '.join(words)}")


_INSERT_CANDLE = "INSERT OR REPLACE INTO candles VALUES (?, ?, ?, ?, ?, ?, ?)"


def _num(value: Any) -> float | None:
    """A float for SQLite, or NULL for what is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _json(value: Any) -> Any:
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=_plain)
    if isinstance(value, np.ndarray):
        return json.dumps(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
