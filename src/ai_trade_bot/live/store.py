"""The live runner's durable state in SQLite (WAL), keyed by symbol.

Each closed candle is one transaction: the candle, its features, the decision (every
agent's vote, the meta confidence, the reason, the model version), the orders (written
before they are sent, under a UNIQUE client order id), the fills, the position, cash and
equity, and the runner state needed to resume (the execution core's state array, the
carried feature and agent states). After a crash the runner reloads all of it and resumes
after the last committed candle.

Readers (the status API) open the file read-only; WAL lets them read while the runner
writes.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
    trading TEXT
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
    PRIMARY KEY (symbol, ts)
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
    equity REAL, cash REAL, units REAL, price REAL, drawdown REAL,
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


_NUMERIC_DECISION_COLUMNS = frozenset(
    ("signal", "target", "down", "flat", "up", "confidence", "disagreement", "informative",
     "magnitude", "rsi", "latency_ms")
)  # fmt: skip


def ts_of(value: int) -> pd.Timestamp:
    return pd.Timestamp(int(value), tz="UTC")


class StateStore:
    """One SQLite file (WAL) holding every symbol's runner state."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            _add_missing_columns(self.db)
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit: everything or nothing is committed."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- runner -----------------------------------------------------------------------
    def runner(self, symbol: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM runner WHERE symbol = ?", (symbol,)).fetchone()
        return dict(row) if row else None

    def save_runner(self, db: sqlite3.Connection, symbol: str, **values: Any) -> None:
        values = {k: _json(v) for k, v in values.items()} | {"updated_at": time.time()}
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        updates = ", ".join(f"{k} = excluded.{k}" for k in values)
        db.execute(
            f"INSERT INTO runner (symbol, {columns}) VALUES (?, {marks}) "
            f"ON CONFLICT(symbol) DO UPDATE SET {updates}",
            (symbol, *values.values()),
        )

    # -- candles and features ----------------------------------------------------------
    def add_candles(self, db: sqlite3.Connection, symbol: str, candles: pd.DataFrame) -> None:
        rows = [
            (symbol, ts_int(ts), *map(float, row))
            for ts, row in zip(candles.index, candles[list(_OHLCV)].to_numpy(), strict=True)
        ]
        db.executemany(_INSERT_CANDLE, rows)

    def candles(self, symbol: str, limit: int | None = None) -> pd.DataFrame:
        query = "SELECT ts, open, high, low, close, volume FROM candles WHERE symbol = ? "
        query += "ORDER BY ts DESC" + (f" LIMIT {int(limit)}" if limit else "")
        frame = pd.DataFrame(
            self.db.execute(query, (symbol,)).fetchall(),
            columns=["ts", *_OHLCV],
        ).iloc[::-1]
        index = pd.DatetimeIndex(pd.to_datetime(frame.pop("ts"), utc=True), name="timestamp")
        return frame.set_index(index).astype("float64")

    def add_feature_row(
        self, db: sqlite3.Connection, symbol: str, ts: pd.Timestamp, row: np.ndarray
    ) -> None:
        db.execute(
            "INSERT OR REPLACE INTO features VALUES (?, ?, ?)",
            (symbol, ts_int(ts), np.asarray(row, dtype=np.float64).tobytes()),
        )

    def feature_rows(self, symbol: str, columns: list[str], limit: int) -> pd.DataFrame:
        rows = self.db.execute(
            "SELECT ts, row FROM features WHERE symbol = ? ORDER BY ts DESC LIMIT ?",
            (symbol, int(limit)),
        ).fetchall()[::-1]
        index = pd.DatetimeIndex([ts_of(r["ts"]) for r in rows], name="timestamp")
        values = np.array([np.frombuffer(r["row"], dtype=np.float64) for r in rows])
        return pd.DataFrame(values.reshape(len(rows), len(columns)), index=index, columns=columns)

    # -- decisions, orders, fills, equity -----------------------------------------------
    def add_decision(self, db: sqlite3.Connection, symbol: str, **values: Any) -> None:
        values = {k: _json(v) for k, v in values.items()}
        columns = ", ".join(["symbol", *values])
        marks = ", ".join("?" for _ in range(len(values) + 1))
        db.execute(
            f"INSERT OR REPLACE INTO decisions ({columns}) VALUES ({marks})",
            (symbol, *values.values()),
        )

    def decisions(
        self, symbol: str, limit: int, columns: tuple[str, ...] | None = None
    ) -> pd.DataFrame:
        """The last ``limit`` decisions, oldest first, indexed by candle time; with
        ``columns`` (numeric ones), only those, read straight into a float frame."""
        if columns is not None:
            times, values = self.decision_arrays(symbol, limit, columns)
            index = pd.DatetimeIndex(pd.to_datetime(times, unit="ns", utc=True), name="timestamp")
            return pd.DataFrame(values, index=index, columns=list(columns))
        rows = self.db.execute(
            "SELECT * FROM decisions WHERE symbol = ? ORDER BY ts DESC LIMIT ?",
            (symbol, int(limit)),
        ).fetchall()[::-1]
        frame = pd.DataFrame([dict(r) for r in rows])
        if frame.empty:
            return frame
        frame.index = pd.DatetimeIndex([ts_of(t) for t in frame["ts"]], name="timestamp")
        return frame

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

    def add_candle(self, db: sqlite3.Connection, symbol: str, ts: int, values: np.ndarray) -> None:
        """One candle: epoch ns ``ts`` and open, high, low, close, volume."""
        db.execute(_INSERT_CANDLE, (symbol, int(ts), *map(float, values)))

    def add_order(self, db: sqlite3.Connection, **values: Any) -> bool:
        """Insert an order; False when its client order id exists already (never twice)."""
        now = time.time()
        values = {"created_at": now, "updated_at": now} | values
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = db.execute(
            f"INSERT OR IGNORE INTO orders ({columns}) VALUES ({marks})",
            tuple(values.values()),
        )
        return cursor.rowcount == 1

    def update_order(self, db: sqlite3.Connection, client_order_id: str, **values: Any) -> None:
        values = values | {"updated_at": time.time()}
        sets = ", ".join(f"{k} = ?" for k in values)
        db.execute(
            f"UPDATE orders SET {sets} WHERE client_order_id = ?",
            (*values.values(), client_order_id),
        )

    def orders(self, symbol: str, status: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT * FROM orders WHERE symbol = ?"
        args: tuple[Any, ...] = (symbol,)
        if status:
            query += " AND status = ?"
            args += (status,)
        return [dict(r) for r in self.db.execute(query + " ORDER BY ts, rowid", args)]

    def add_fill(self, db: sqlite3.Connection, symbol: str, **values: Any) -> None:
        columns = ", ".join(["symbol", *values])
        marks = ", ".join("?" for _ in range(len(values) + 1))
        db.execute(
            f"INSERT OR REPLACE INTO fills ({columns}) VALUES ({marks})",
            (symbol, *values.values()),
        )

    def fills(self, symbol: str) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.db.execute(
                "SELECT * FROM fills WHERE symbol = ? ORDER BY bar, seq", (symbol,)
            )
        ]

    def add_equity(self, db: sqlite3.Connection, symbol: str, ts: pd.Timestamp, **values) -> None:
        db.execute(
            "INSERT OR REPLACE INTO equity VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                symbol,
                ts_int(ts),
                values["equity"],
                values["cash"],
                values["units"],
                values["price"],
                values["drawdown"],
            ),
        )
        db.execute(
            "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?, ?)",
            (
                symbol,
                values["units"],
                values["entry_price"],
                values["cash"],
                values["equity"],
                ts_int(ts),
            ),
        )

    def equity(self, symbol: str) -> pd.DataFrame:
        frame = pd.DataFrame(
            [
                dict(r)
                for r in self.db.execute(
                    "SELECT * FROM equity WHERE symbol = ? ORDER BY ts", (symbol,)
                )
            ]
        )
        if not frame.empty:
            frame.index = pd.DatetimeIndex([ts_of(t) for t in frame["ts"]], name="timestamp")
        return frame

    # -- quarantine -------------------------------------------------------------------------
    def add_quarantine(
        self,
        db: sqlite3.Connection,
        symbol: str,
        ts: int,
        rule: str,
        values: np.ndarray,
        message: str,
    ) -> bool:
        """Keep a candle the runner refused, with the rule it broke; False when it was
        quarantined for that rule already (a replay after a restart)."""
        cursor = db.execute(
            "INSERT OR IGNORE INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (symbol, int(ts), rule, *(_num(v) for v in values), message, time.time()),
        )
        return cursor.rowcount == 1

    def quarantined(self, symbol: str) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.db.execute(
                "SELECT * FROM quarantine WHERE symbol = ? ORDER BY at, ts", (symbol,)
            )
        ]

    # -- alerts and commands ----------------------------------------------------------------
    def add_alert(self, symbol: str | None, kind: str, message: str) -> None:
        self.db.execute(
            "INSERT INTO alerts (at, symbol, kind, message) VALUES (?, ?, ?, ?)",
            (time.time(), symbol, kind, message),
        )

    def alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.db.execute("SELECT * FROM alerts ORDER BY id DESC LIMIT ?", (limit,))
        ]

    def add_command(self, symbol: str, command: str, requested_by: str) -> int:
        cursor = self.db.execute(
            "INSERT INTO commands (symbol, command, requested_by, requested_at) "
            "VALUES (?, ?, ?, ?)",
            (symbol, command, requested_by, time.time()),
        )
        return int(cursor.lastrowid)

    def pending_commands(self, symbol: str) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.db.execute(
                "SELECT * FROM commands WHERE symbol = ? AND applied_at IS NULL ORDER BY id",
                (symbol,),
            )
        ]

    def apply_command(self, db: sqlite3.Connection, command_id: int, ts: pd.Timestamp) -> None:
        db.execute(
            "UPDATE commands SET applied_at = ?, applied_ts = ? WHERE id = ?",
            (time.time(), ts_int(ts), command_id),
        )


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


_OHLCV = ("open", "high", "low", "close", "volume")
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
