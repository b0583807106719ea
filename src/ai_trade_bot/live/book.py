"""The live runner of a universe: N symbols traded as one book, in one process.

One decision step per time, once every symbol's candle at that time has closed (or, with
a polled feed, ``live.bar_timeout`` has passed: a late symbol then makes no new entries at
that step, and an alert says so). Per step, committed as one SQLite transaction for all
symbols (:meth:`BookStore.commit`):

0. each candle is checked (:class:`ai_trade_bot.live.guard.CandleGuard`); a bad one is
   quarantined with its rule and the symbol counts as late for this step;
1. the book's execution core (:class:`ai_trade_bot.portfolio.core.PortfolioCore`, the
   rules the portfolio backtest runs) fills what was clamped at the previous close at
   this step's opens, with each symbol's costs, stops and targets;
2. the deployed model's outputs for every symbol with a candle
   (:class:`ai_trade_bot.live.universe_stream.UniverseStream`);
3. the construction (:func:`ai_trade_bot.evaluation.portfolio.model_targets`, the one the
   evaluation backtests) turns the outputs since the first step into targets; late and
   paused symbols make no new entries, flattened ones go to zero; then the book's clamp
   (every per-symbol limit, then sector, correlated cluster, total exposure and heat);
4. the paper orders toward the clamped targets are recorded with the step, and filled by
   the core at the next step's opens.

Without a usable model (no champion) the book makes no new entries; open positions keep
their stops and targets. Real orders for a book are refused: paper only.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.backtest.engine import expected_day
from ai_trade_bot.backtest.state import (
    S_CASH,
    S_ENTRY_PX,
    S_EQUITY,
    S_PEAK,
    S_STOP,
    S_TAKE,
    S_TRADES_TODAY,
    S_UNITS,
    state_from_record,
    state_record,
)
from ai_trade_bot.data.normalise import OHLCV_COLUMNS
from ai_trade_bot.data.timeframes import infer_timeframe, timeframe_to_timedelta
from ai_trade_bot.errors import AiTradeBotError
from ai_trade_bot.features.build import LabelConfig, labels_for
from ai_trade_bot.features.labels import label_arrays
from ai_trade_bot.live.guard import CandleGuard
from ai_trade_bot.live.ledger import Outcome, Prediction, outcomes_known
from ai_trade_bot.live.store import StateStore, add_ledger, ts_int, ts_of
from ai_trade_bot.portfolio.core import PortfolioCore
from ai_trade_bot.portfolio.limits import clusters_at
from ai_trade_bot.registry.universe_bundle import UniverseBundle

logger = logging.getLogger(__name__)

_DAY_NS = 86_400_000_000_000
OUTPUT_COLUMNS = ("down", "flat", "up", "confidence", "informative", "magnitude")

BOOK_SCHEMA = """
CREATE TABLE IF NOT EXISTS book (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    symbols TEXT NOT NULL, timeframe TEXT NOT NULL, mode TEXT NOT NULL,
    model_version TEXT, model_state TEXT, first_ts INTEGER, last_ts INTEGER,
    bar INTEGER NOT NULL DEFAULT -1, account TEXT, states TEXT, pending TEXT,
    last_close TEXT, paused TEXT, halted_reason TEXT, feed_state TEXT, updated_at REAL,
    pid INTEGER, started_at REAL, stopped_at REAL, stop_reason TEXT, status TEXT,
    construction TEXT, atr TEXT
);
CREATE TABLE IF NOT EXISTS book_symbols (symbol TEXT PRIMARY KEY, sector TEXT);
CREATE TABLE IF NOT EXISTS book_candles (
    symbol TEXT NOT NULL, ts INTEGER NOT NULL,
    open REAL, high REAL, low REAL, close REAL, volume REAL, missing INTEGER NOT NULL,
    PRIMARY KEY (symbol, ts)
);
CREATE TABLE IF NOT EXISTS book_decisions (
    symbol TEXT NOT NULL, ts INTEGER NOT NULL, model_version TEXT,
    down REAL, flat REAL, up REAL, confidence REAL, informative REAL, magnitude REAL,
    expected_return REAL, target REAL, clamped REAL, reason TEXT,
    PRIMARY KEY (symbol, ts)
);
CREATE TABLE IF NOT EXISTS book_fills (
    symbol TEXT NOT NULL, ts INTEGER NOT NULL, bar INTEGER NOT NULL, seq INTEGER NOT NULL,
    client_order_id TEXT, units REAL, price REAL, fee REAL, kind TEXT,
    PRIMARY KEY (symbol, bar, seq)
);
CREATE TABLE IF NOT EXISTS book_trades (
    symbol TEXT NOT NULL, entry_bar INTEGER NOT NULL, exit_bar INTEGER NOT NULL,
    exit_ts INTEGER NOT NULL, side REAL, units REAL, entry_price REAL, exit_price REAL,
    pnl REAL, fees REAL, reason TEXT,
    PRIMARY KEY (symbol, exit_bar, entry_bar)
);
CREATE TABLE IF NOT EXISTS book_orders (
    client_order_id TEXT PRIMARY KEY, symbol TEXT NOT NULL, ts INTEGER NOT NULL,
    target REAL, held REAL, status TEXT NOT NULL, mode TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS book_equity (
    ts INTEGER PRIMARY KEY, equity REAL, cash REAL, gross REAL, drawdown REAL,
    by_sector TEXT, by_cluster TEXT, limits TEXT
);
CREATE TABLE IF NOT EXISTS book_positions (
    symbol TEXT PRIMARY KEY, units REAL, entry_price REAL, stop REAL, take REAL,
    price REAL, weight REAL, target REAL, reason TEXT, late INTEGER, paused INTEGER, ts INTEGER
);
"""


@dataclass(frozen=True)
class BookConfig:
    """How the book runner runs (``params:live`` and the command line)."""

    mode: str = "paper"
    bar_timeout: float = 60.0  # seconds after a time's first candle before the step goes
    history_rows: int | None = None
    reload_check_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.mode != "paper":
            raise AiTradeBotError(
                "a universe book trades on paper only: real orders for a book are not built "
                "(each order would need the one-symbol runner's reconcile and crash path)"
            )


@dataclass
class BookEvent:
    """One time step: the candles that closed at ``ts`` (symbol -> OHLCV) and the symbols
    whose candle did not come in time (``late``)."""

    ts: pd.Timestamp
    candles: dict[str, np.ndarray]
    late: list[str] = field(default_factory=list)
    live: bool = True


class ReplayBookFeed:
    """Long candles (``timestamp, symbol, OHLCV, missing``) replayed one time at a time
    from ``start`` on; everything before is history. A symbol without a candle at a time
    (``missing``) is late for that step."""

    def __init__(self, candles: pd.DataFrame, symbols: list[str], start: pd.Timestamp,
                 *, speed: float = 0.0) -> None:  # fmt: skip
        self.candles = candles.sort_values(["timestamp", "symbol"]).reset_index(drop=True)
        self.symbols = list(symbols)
        self.start = pd.Timestamp(start)
        self.speed = speed
        times = pd.DatetimeIndex(self.candles["timestamp"])
        self.timeframe = infer_timeframe(pd.DatetimeIndex(sorted(set(times))))

    def history(self) -> pd.DataFrame:
        return self.candles[pd.DatetimeIndex(self.candles["timestamp"]) < self.start]

    def events(self, after: pd.Timestamp | None = None) -> Iterator[BookEvent]:
        times = pd.DatetimeIndex(self.candles["timestamp"])
        rows = self.candles[
            (times >= self.start) & ((times > after) if after is not None else True)
        ]
        for ts, group in rows.groupby("timestamp", sort=True):
            if self.speed > 0:
                time.sleep(1.0 / self.speed)
            present = group[~group["missing"].astype(bool)].set_index("symbol")
            candles = {
                s: present.loc[s, list(OHLCV_COLUMNS)].to_numpy(dtype=np.float64)
                for s in self.symbols
                if s in present.index
            }
            yield BookEvent(
                pd.Timestamp(ts), candles, [s for s in self.symbols if s not in candles]
            )


class MultiFeed:
    """One-symbol feeds (``ai_trade_bot.live.feeds``: replay or ccxt, each polling with
    the exchange's rate limiter) merged into time steps: a time is complete when every
    symbol has given its candle at that time or a later one, or ``bar_timeout`` seconds
    after its first candle arrived (the symbols still missing are late)."""

    def __init__(self, feeds: dict[str, Any], bar_timeout: float) -> None:
        self.feeds = feeds
        self.symbols = sorted(feeds)
        self.bar_timeout = bar_timeout
        self.timeframe = next(iter(feeds.values())).timeframe

    def history(self) -> pd.DataFrame:
        parts = []
        for symbol, feed in self.feeds.items():
            frame = feed.history(None)
            parts.append(frame.rename_axis("timestamp").reset_index().assign(symbol=symbol))
        long = pd.concat(parts, ignore_index=True)
        from ai_trade_bot.universe.panel import align, to_long

        clean = {
            s: g.set_index("timestamp")[list(OHLCV_COLUMNS)] for s, g in long.groupby("symbol")
        }
        return to_long(align(clean))

    def events(self, after: pd.Timestamp | None = None) -> Iterator[BookEvent]:
        arrivals: queue.Queue = queue.Queue()
        done = threading.Event()

        def pump(symbol: str, feed: Any) -> None:
            try:
                for event in feed.events(after=after):
                    if done.is_set():
                        return
                    if event.kind == "candle":
                        arrivals.put((symbol, event))
            finally:
                arrivals.put((symbol, None))

        threads = [threading.Thread(target=pump, args=(s, f), daemon=True)
                   for s, f in self.feeds.items()]  # fmt: skip
        for thread in threads:
            thread.start()
        pending: dict[pd.Timestamp, dict[str, np.ndarray]] = {}
        first_seen: dict[pd.Timestamp, float] = {}
        newest: dict[str, pd.Timestamp] = {}
        ended: set[str] = set()
        try:
            while len(ended) < len(self.symbols) or pending:
                try:
                    symbol, event = arrivals.get(timeout=0.05)
                except queue.Empty:
                    symbol, event = None, None
                if symbol is not None and event is None:
                    ended.add(symbol)
                elif event is not None:
                    ts = pd.Timestamp(event.candle.name)
                    newest[symbol] = ts
                    pending.setdefault(ts, {})[symbol] = event.candle[list(OHLCV_COLUMNS)].to_numpy(
                        dtype=np.float64
                    )
                    first_seen.setdefault(ts, time.monotonic())
                for ts in sorted(pending):
                    have = pending[ts]
                    settled = all(
                        s in have or s in ended or (s in newest and newest[s] > ts)
                        for s in self.symbols
                    )
                    timed_out = time.monotonic() - first_seen[ts] >= self.bar_timeout
                    if not (settled or timed_out):
                        break
                    late = [s for s in self.symbols if s not in have]
                    yield BookEvent(ts, pending.pop(ts), late)
                    first_seen.pop(ts, None)
        finally:
            done.set()


class BookStore:
    """The book's tables beside the one-symbol runner's, in the same SQLite file (WAL):
    the alerts, quarantine and commands tables are shared."""

    def __init__(self, path: str) -> None:
        self.state = StateStore(path)
        self.db = self.state.db
        self.db.executescript(BOOK_SCHEMA)

    def close(self) -> None:
        self.state.close()

    def book(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM book WHERE id = 1").fetchone()
        return dict(row) if row else None

    def start(self, history: pd.DataFrame, row: dict[str, Any], sectors: dict[str, str]) -> None:
        with self.state._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO book_candles VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _candle_rows(history),
            )
            db.executemany("INSERT OR REPLACE INTO book_symbols VALUES (?, ?)",
                           list(sectors.items()))  # fmt: skip
            _save_book(db, {"id": 1, **row})

    def save(self, **values: Any) -> None:
        with self.state._transaction() as db:
            _save_book(db, values)

    def candles(self) -> pd.DataFrame:
        frame = pd.read_sql_query(
            "SELECT symbol, ts, open, high, low, close, volume, missing FROM book_candles "
            "ORDER BY ts, symbol",
            self.db,
        )
        frame["timestamp"] = pd.to_datetime(frame.pop("ts"), utc=True)
        frame["missing"] = frame["missing"].astype(bool)
        return frame

    def outputs(self) -> pd.DataFrame:
        frame = pd.read_sql_query(
            "SELECT symbol, ts, down, flat, up, confidence, informative, magnitude FROM "
            "book_decisions WHERE down IS NOT NULL ORDER BY ts, symbol",
            self.db,
        )
        frame["timestamp"] = pd.to_datetime(frame.pop("ts"), utc=True)
        return frame

    def trades(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM book_trades ORDER BY exit_bar, symbol", self.db)

    def fills(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM book_fills ORDER BY bar, symbol, seq", self.db)

    def equity(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM book_equity ORDER BY ts", self.db)

    def orders(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM book_orders ORDER BY ts, symbol", self.db)

    def pending_commands(self, symbols: list[str]) -> list[dict[str, Any]]:
        marks = ", ".join("?" for _ in range(len(symbols) + 1))
        rows = self.db.execute(
            f"SELECT * FROM commands WHERE symbol IN ({marks}) AND applied_at IS NULL ORDER BY id",
            (*symbols, "*"),
        ).fetchall()
        return [dict(r) for r in rows]

    def commit(self, step: dict[str, Any]) -> None:
        """Everything one time step changes, for every symbol, in one transaction."""
        with self.state._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO book_candles VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                step["candles"],
            )
            db.executemany(
                "INSERT OR REPLACE INTO book_decisions VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                step["decisions"],
            )
            db.executemany(
                "INSERT OR REPLACE INTO book_fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                step["fills"],
            )
            db.executemany(
                "INSERT OR REPLACE INTO book_trades VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                step["trades"],
            )
            for cid, status in step["order_updates"]:
                db.execute("UPDATE book_orders SET status = ? WHERE client_order_id = ?",
                           (status, cid))  # fmt: skip
            db.executemany(
                "INSERT OR IGNORE INTO book_orders VALUES (?, ?, ?, ?, ?, ?, ?)", step["orders"]
            )
            db.execute("INSERT OR REPLACE INTO book_equity VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       step["equity"])  # fmt: skip
            db.executemany(
                "INSERT OR REPLACE INTO book_positions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                step["positions"],
            )
            for command_id in step["commands"]:
                db.execute(
                    "UPDATE commands SET applied_at = ?, applied_ts = ? WHERE id = ?",
                    (time.time(), step["ts"], command_id),
                )
            for symbol, predictions, outcomes in step.get("ledger", ()):
                add_ledger(db, symbol, step["ts"], step["book"]["model_version"], predictions,
                           step["target_ts"], step["horizon"], outcomes)  # fmt: skip
            _save_book(db, step["book"])


def _candle_rows(long: pd.DataFrame) -> list[tuple]:
    values = long[list(OHLCV_COLUMNS)].to_numpy(dtype=np.float64)
    times = pd.DatetimeIndex(long["timestamp"]).asi8
    missing = long["missing"].astype(bool).to_numpy()
    return [
        (str(s), int(t), *(None if m or not np.isfinite(v) else float(v) for v in row), int(m))
        for s, t, row, m in zip(long["symbol"], times, values, missing, strict=True)
    ]


def _save_book(db, values: dict[str, Any]) -> None:
    values = {**values, "updated_at": time.time()}
    exists = db.execute("SELECT 1 FROM book WHERE id = 1").fetchone()
    if exists:
        sets = ", ".join(f"{k} = ?" for k in values if k != "id")
        db.execute(f"UPDATE book SET {sets} WHERE id = 1",
                   [v for k, v in values.items() if k != "id"])  # fmt: skip
    else:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        db.execute(f"INSERT INTO book ({columns}) VALUES ({marks})", list(values.values()))


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


class UniverseModelSource:
    """A universe bundle from a local directory or an MLflow model URI
    (``models:/ai_trade_bot_universe@champion``), the alias resolved at each check."""

    def __init__(self, uri: str, tracking_uri: str | None = None) -> None:
        from ai_trade_bot.live.model import ModelSource

        self._alias = ModelSource(uri, tracking_uri)  # (resolves an alias to a version)
        self.uri = uri

    def version(self) -> str:
        return self._alias.version()

    def load(self) -> tuple[UniverseBundle, str]:
        from ai_trade_bot.registry.universe_bundle import load_universe_bundle

        version = self.version()
        uri = self.uri
        if uri.startswith("models:/") and "@" in uri:
            uri = f"models:/{uri[len('models:/') :].partition('@')[0]}/{version}"
        return load_universe_bundle(uri), version


class BookRunner:
    """See the module docstring."""

    def __init__(
        self,
        feed: ReplayBookFeed | MultiFeed,
        store: BookStore,
        bundle: UniverseBundle | None,
        config: BookConfig,
        *,
        version: str = "local",
        symbols: list[str] | None = None,
        source: Any | None = None,
        notifier: Any | None = None,
    ) -> None:
        self.feed, self.store, self.config = feed, store, config
        self.source = source
        self.notifier = notifier  # ai_trade_bot.live.notify.Notifier
        self.version = version if bundle is not None else "none"
        self.symbols = list(bundle.symbols if bundle is not None else symbols or feed.symbols)
        self._use(bundle)
        self._last_check = time.monotonic()
        self._refused: str | None = None
        self.timeframe = feed.timeframe
        self.bar = timeframe_to_timedelta(self.timeframe)
        self.stream = None
        self.latencies: list[float] = []
        self.processed = 0
        self.alerts_sent: list[tuple[str, str]] = []
        self.guards: dict[str, CandleGuard] = {}

    def _use(self, bundle: UniverseBundle | None) -> None:
        """Trade ``bundle`` (None: no model, no new entries): its settings, construction,
        limits and the execution core they make."""
        self.bundle = bundle
        self.labels = LabelConfig(**(bundle.labels if bundle is not None else {}))
        if bundle is None:
            from ai_trade_bot.evaluation.settings import parse_evaluate_config
            from ai_trade_bot.portfolio.construct import PortfolioConfig
            from ai_trade_bot.portfolio.limits import RiskLimits

            self.settings, self.construction, self.limits = (
                parse_evaluate_config({}), PortfolioConfig(), RiskLimits(),
            )  # fmt: skip
        else:
            self.settings = bundle.config
            self.construction = bundle.construction
            self.limits = bundle.limits
        engine = self.construction.engine(self.settings.engine)
        self.core = PortfolioCore(engine, self.limits, self.symbols)
        # O(1) steps (carried construction state) unless the construction reads the
        # recent outcomes (strategy), ATR (atr stops) or ATR-scaled slippage
        method = bundle.deployed["method"] if bundle is not None else "equal"
        self.fast = (
            method != "strategy"
            and self.construction.stop != "atr"
            and self.settings.engine.take != "atr"
            and self.settings.costs.slippage_vol_mult == 0
        )

    def _check_model(self) -> None:
        """Between steps, every ``reload_check_seconds``: when the source's alias moved
        (a new champion), trade the new bundle from the next step on (one alert); a
        bundle for other symbols is refused (one alert), the current one kept."""
        if self.source is None:
            return
        now = time.monotonic()
        if now - self._last_check < self.config.reload_check_seconds:
            return
        self._last_check = now
        try:
            version = self.source.version()
        except Exception:  # the registry is away: keep trading what runs
            return
        if version in (self.version, self._refused):
            return
        try:
            bundle, version = self.source.load()
        except Exception as exc:
            self._refused = version
            self.alert("fallback", f"model {version} cannot load ({exc}); keeping {self.version}")
            return
        from ai_trade_bot.live.universe_stream import unsupported

        reason = unsupported(bundle)
        if reason is not None:
            self._refused = version
            self.alert("model_change", f"model {version}: {reason}: refused, keeping "
                       f"{self.version}")  # fmt: skip
            return
        if sorted(bundle.symbols) != sorted(self.symbols):
            self._refused = version
            self.alert("model_change", f"model {version} trades {bundle.symbols}, this book "
                       f"{self.symbols}: refused, keeping {self.version}")  # fmt: skip
            return
        previous = self.version
        self._use(bundle)
        self.version = version
        candles = self.store.candles()
        self._restore_windows(candles)
        from ai_trade_bot.live.universe_stream import UniverseStream

        self.stream = UniverseStream(bundle)
        self.stream.start(candles)
        self.store.save(model_version=version, model_state="ok")
        self.alert("model_change", f"model {previous} -> {version}")

    # -- alerts ---------------------------------------------------------------------------
    def alert(self, kind: str, message: str, symbol: str | None = None) -> None:
        from ai_trade_bot.live.notify import mask

        message = mask(message)  # a notification URL's token never reaches the state
        logger.warning("alert %s [%s]: %s", kind, symbol or "book", message)
        self.alerts_sent.append((kind, message))
        self.store.state.add_alert(symbol or "*", kind, message)
        if self.notifier is not None:
            self.notifier.notify(kind, symbol, message)

    # -- start / resume -------------------------------------------------------------------
    def start(self) -> None:
        saved = self.store.book()
        run = {"pid": os.getpid(), "started_at": time.time(), "stopped_at": None}
        if saved is not None and json.loads(saved["symbols"]) != self.symbols:
            raise AiTradeBotError(
                f"the state file holds a book of {json.loads(saved['symbols'])}; this runner "
                f"trades {self.symbols}: use another --state"
            )
        if saved is None or saved["last_ts"] is None:
            history = self.feed.history()
            if history.empty:
                raise AiTradeBotError("the feed gave no history to start the book from")
            sectors = {s: self.limits.sectors.get(s, s) for s in self.symbols}
            self.store.start(
                history,
                {
                    "symbols": json.dumps(self.symbols), "timeframe": self.timeframe,
                    "mode": self.config.mode, "model_version": self.version,
                    "model_state": "ok" if self.bundle is not None else "none", "bar": -1,
                    "last_ts": ts_int(pd.Timestamp(history["timestamp"].max())),
                    "paused": json.dumps([]), **run,
                },
                sectors,
            )  # fmt: skip
            logger.info("book of %d symbols started from %d candles of history",
                        len(self.symbols), len(history))  # fmt: skip
            if self.bundle is None:
                self.alert("fallback", "no universe model: the book makes no new entries")
        else:
            self.store.save(**run, model_version=self.version)
            logger.info("book resumed after %s (bar %d)", ts_of(saved["last_ts"]), saved["bar"])
        candles = self.store.candles()
        self._restore_windows(candles)
        for symbol in self.symbols:
            own = candles[(candles["symbol"] == symbol) & ~candles["missing"]]
            own = own.set_index("timestamp")[list(OHLCV_COLUMNS)]
            self.guards[symbol] = CandleGuard.from_history(own, self.bar)
        if self.bundle is not None:
            from ai_trade_bot.live.universe_stream import UniverseStream

            self.stream = UniverseStream(self.bundle)
            self.stream.start(candles)

    def _restore_windows(self, candles: pd.DataFrame) -> None:
        """What the steps read of the stored candles: all of them (the full path), or
        each symbol's last closes and the span's last rows (the stepped path)."""
        self._history = candles  # every stored candle, kept in memory from here on
        self._own_closes: dict[str, list[float]] = {}
        self._span_closes: list[tuple[pd.Timestamp, np.ndarray]] = []
        first = self.store.book()["first_ts"]
        keep = self.construction.vol_window + 1
        for symbol in self.symbols:
            own = candles[(candles["symbol"] == symbol) & ~candles["missing"]]
            self._own_closes[symbol] = own["close"].to_numpy(dtype=np.float64)[-keep:].tolist()
        if first is not None:  # the span's last closes (the correlation clusters read them)
            span = candles[pd.DatetimeIndex(candles["timestamp"]) >= ts_of(first)]
            wide = span.pivot(index="timestamp", columns="symbol", values="close")
            wide = wide.reindex(columns=self.symbols).iloc[-(self.limits.correlation_window + 1) :]
            self._span_closes = [(t, row) for t, row in zip(wide.index, wide.to_numpy(),
                                                            strict=True)]  # fmt: skip
        if self.fast:
            self._history = None  # not needed: trailing closes only
        # the prediction ledger's outcomes read each symbol's last closes
        self._ledger_closes: dict[str, tuple[list[int], list[float]]] = {}
        for symbol in self.symbols:
            own = candles[(candles["symbol"] == symbol) & ~candles["missing"]].iloc[
                -self._ledger_keep :
            ]
            times = pd.DatetimeIndex(own["timestamp"]).asi8.tolist()
            self._ledger_closes[symbol] = (times, own["close"].astype(float).tolist())
        self._scored = {s: self.store.state.scored_upto(s) for s in self.symbols}

    @property
    def _ledger_keep(self) -> int:
        """Closes a symbol's outcomes read: the label's band window, the horizon, margin."""
        return self.labels.band_window + self.labels.horizon + 4

    def _ledger(
        self, at: int, candles: dict[str, np.ndarray], outputs: pd.DataFrame, ev: np.ndarray
    ) -> list[tuple[str, list[Prediction], list[Outcome]]]:
        """Each symbol's forecast of this step (the deployed agent's probabilities, the
        construction's expected return) and the outcomes its new close made known, for
        the prediction ledger the one-symbol runner keeps (same table, same scoring)."""
        labels = self.labels
        rows = {}
        if len(outputs):
            rows = {r["symbol"]: r for r in outputs.to_dict("records")}
        agent = self.bundle.agent if self.bundle is not None else ""
        found = []
        for k, symbol in enumerate(self.symbols):
            outcomes: list[Outcome] = []
            if symbol in candles:
                times, closes = self._ledger_closes[symbol]
                times.append(at)
                closes.append(float(candles[symbol][3]))
                del times[: -self._ledger_keep], closes[: -self._ledger_keep]
                realized = label_arrays(
                    np.asarray(closes),
                    horizon=labels.horizon,
                    flat_band_sigmas=labels.flat_band_sigmas,
                    band_window=labels.band_window,
                )["direction"]
                stamps = np.asarray(times, dtype=np.int64)
                outcomes = outcomes_known(stamps, np.asarray(closes), stamps, realized,
                                          labels.horizon, self._scored[symbol])  # fmt: skip
                if outcomes:
                    self._scored[symbol] = max(o.ts for o in outcomes)
            row = rows.get(symbol)
            predictions = []
            if row is not None and np.isfinite([row["down"], row["flat"], row["up"]]).all():
                predictions = [
                    Prediction(agent, float(row["down"]), float(row["flat"]), float(row["up"]),
                               _num(row.get("confidence")), _num(ev[k]))
                ]  # fmt: skip
            if predictions or outcomes:
                found.append((symbol, predictions, outcomes))
        return found

    def run(self, max_steps: int | None = None) -> None:
        after = ts_of(self.store.book()["last_ts"])
        for event in self.feed.events(after=after):
            self._check_model()
            self.process(event)
            self.processed += 1
            if max_steps is not None and self.processed >= max_steps:
                break

    def stop(self, reason: str) -> None:
        self.store.save(stopped_at=time.time(), stop_reason=reason)

    # -- one step -------------------------------------------------------------------------
    def process(self, event: BookEvent) -> None:
        started = time.perf_counter()
        book = self.store.book()
        ts, at = event.ts, ts_int(event.ts)
        if book["last_ts"] is not None and at <= book["last_ts"]:
            return  # a time already committed (a replay after a restart)
        candles: dict[str, np.ndarray] = {}
        late = list(event.late)
        for symbol in self.symbols:
            values = event.candles.get(symbol)
            if values is None:
                continue
            last = self.guards[symbol]
            rule, message = last.rule(at, np.asarray(values, dtype=np.float64), book["last_ts"])
            if rule is not None:
                if self.store.state.quarantine(symbol, at, rule, np.asarray(values), message):
                    self.alert("bad_candle", f"{symbol} {ts}: {message}; late this step", symbol)
                late.append(symbol)
                continue
            candles[symbol] = np.asarray(values, dtype=np.float64)
        for symbol in sorted(set(late)):
            if symbol not in event.candles or symbol in candles:
                self.alert("late", f"{symbol} has no candle at {ts}: no new entries for it "
                           "this step", symbol)  # fmt: skip
        bar = int(book["bar"]) + 1
        day = at // _DAY_NS
        n = len(self.symbols)
        block = np.full((n, 5), np.nan)
        for k, symbol in enumerate(self.symbols):
            if symbol in candles:
                block[k] = candles[symbol]
        long_now = pd.DataFrame(
            {"timestamp": ts, "symbol": self.symbols, **{c: block[:, j] for j, c in
             enumerate(OHLCV_COLUMNS)}, "missing": [s not in candles for s in self.symbols]}
        )  # fmt: skip
        # the full path reads every stored candle; the stepped one trailing closes only
        history = pd.concat([self._history, long_now], ignore_index=True) if not self.fast else None
        first_ts = book["first_ts"] if book["first_ts"] is not None else at
        # the model's outputs for this step first: the stops' volatility forecast of this
        # bar (the trailing stop's step) may come from them; the fill does not change them
        outputs = pd.DataFrame()
        if self.stream is not None:
            outputs = self.stream.step(ts, {s: candles.get(s) for s in self.symbols})
        if self.fast:
            made = self._step_inputs(history, outputs, book, block, bar, first_ts)
        else:
            made = self._inputs(history, first_ts, ts)
        # 1. the fill at this step's opens of what was clamped at the previous close
        fills, trades = [], []
        if bar == 0:
            account, states = self.core.start(day)
            last_close = block[:, 3].copy()  # as the backtest starts its book
        else:
            account = state_from_record(json.loads(book["account"]), where="book account")
            saved_states = json.loads(book["states"])
            states = np.stack([state_from_record(r, where="book state") for r in saved_states])
            last_close = np.array(json.loads(book["last_close"]), dtype=np.float64)
            pending = np.array([np.nan if v is None else v for v in json.loads(book["pending"])])
            fills, trades = self.core.fill(
                account, states, bar, block[:, :4], pending,
                atr_prev=made["atr"][-2] if len(made["atr"]) > 1 else made["atr"][-1],
                atr_now=made["atr"][-1], day=day, fee=np.full(n, made["fee"]),
                slip=made["slip"][-1], last_close=last_close,
            )  # fmt: skip
        self._check_finite(account, states, ts)
        # 3. targets from every output since the first step, then the clamp
        commands = self.store.pending_commands(self.symbols)
        paused = set(json.loads(book["paused"] or "[]"))
        flatten: set[str] = set()
        for command in commands:
            who = set(self.symbols) if command["symbol"] == "*" else {command["symbol"]}
            if command["command"] == "pause":
                paused |= who
            elif command["command"] == "resume":
                paused -= who
            elif command["command"] == "flatten":
                flatten |= who
        if self.fast:
            want, confidence, ev = made["targets"], made["confidence"], made["ev"]
        else:
            want, confidence, ev = self._targets(history, outputs, first_ts, ts, made)
        reasons = {s: "model" if self.bundle is not None else "no model: no new entries"
                   for s in self.symbols}  # fmt: skip
        for k, symbol in enumerate(self.symbols):
            if symbol in flatten:
                want[k], reasons[symbol] = 0.0, "flatten"
            elif symbol in late:
                want[k], reasons[symbol] = np.nan, "late: no new entries"
            elif symbol in paused:
                want[k] = self._no_new_entries(want[k], states[k], account, last_close[k])
                reasons[symbol] = "paused: no new entries"
        clusters = clusters_at(made["returns"], self.limits.correlation_window,
                               self.limits.correlation_threshold)  # fmt: skip
        allowed, why = self.core.clamp(
            account, states, bar + 1, want, np.nan_to_num(confidence, nan=0.0),
            last_close=last_close, atr=made["atr"][-1], clusters=clusters,
            day=int(expected_day(at, self.bar)),
        )  # fmt: skip
        for k, symbol in enumerate(self.symbols):
            if why[k]:
                reasons[symbol] += f"; clamped: {', '.join(why[k])}"
        self._check_finite(account, states, ts)
        step = self._step(ts, at, bar, first_ts, history, long_now, outputs, want, allowed,
                          reasons, ev, fills, trades, account, states, last_close, paused,
                          commands, clusters, book)  # fmt: skip
        horizon = self.labels.horizon
        step["ledger"] = self._ledger(at, candles, outputs, ev)
        step["target_ts"], step["horizon"] = at + horizon * self.bar.value, horizon
        if self.fast:
            step["book"] |= {"construction": json.dumps(made["state"].to_dict()),
                             "atr": json.dumps([_num(v) for v in made["atr"][-1]])}  # fmt: skip
        self.store.commit(step)
        if self.fast:
            self._remember_closes(ts, block[:, 3], first_ts)
        else:
            self._history = history
        self.latencies.append((time.perf_counter() - started) * 1000.0)
        if self.stream is not None:  # the next GARCH refits, while waiting for candles
            self.stream.prefit()
        for fill in fills:
            if fill["kind"] in ("stop", "target", "risk"):
                self.alert("limit_breach", f"{fill['kind']} exit of {fill['symbol']} at {ts}",
                           fill["symbol"])  # fmt: skip
        bound = sorted({r for rs in why for r in rs if r in _ALERTED})
        if bound:
            self.alert("limit_breach", f"{', '.join(bound)} bound at {ts}")
        for command in commands:
            self.alert("command", f"{command['command']} {command['symbol']} applied at {ts}")

    # -- helpers --------------------------------------------------------------------------
    def _inputs(self, history: pd.DataFrame, first_ts: int, ts: pd.Timestamp) -> dict[str, Any]:
        """The panel of the steps so far (as the evaluation builds it) and what the core
        reads of it at this step."""
        from ai_trade_bot.evaluation.portfolio import book_atr, make_panel

        # labels only feed the strategy step's rolling accuracy
        strategy = self.bundle is not None and self.bundle.deployed["method"] == "strategy"
        labels = self._labels(history) if strategy else _NO_LABELS
        panel = make_panel(history, labels, ts_of(first_ts), ts, self.settings, self.construction)
        panel_sigma = panel.sigma
        made: dict[str, Any] = {"panel": panel, "labels": labels}
        made["atr"] = book_atr(panel, self.construction, panel_sigma).reindex(
            columns=self.symbols
        ).to_numpy(dtype=np.float64)  # fmt: skip
        made["fee"] = panel.fee
        made["slip"] = panel.slip.reindex(columns=self.symbols).to_numpy(dtype=np.float64)
        made["returns"] = panel.close.reindex(columns=self.symbols).pct_change(fill_method=None)
        return made

    def _remember_closes(self, ts: pd.Timestamp, closes: np.ndarray, first_ts: int) -> None:
        """After a committed step: each symbol's last own closes and the span's last rows
        of closes (what :meth:`_step_inputs` reads), trimmed to what it reads."""
        keep = self.construction.vol_window + 1
        for k, symbol in enumerate(self.symbols):
            if np.isfinite(closes[k]):
                self._own_closes[symbol] = (self._own_closes[symbol] + [float(closes[k])])[-keep:]
        self._span_closes.append((ts, closes.copy()))
        self._span_closes = self._span_closes[-(self.limits.correlation_window + 1) :]

    def _step_inputs(self, history, outputs, book, block, bar, first_ts) -> dict[str, Any]:
        """What the full path reads of the panel, for this step only, from carried state
        (the construction's sides and holdings, the last ATR row) and trailing windows:
        the same values (the volatility is window-local, the construction stepped by
        :func:`ai_trade_bot.portfolio.construct.targets_step`, tested equal to the batch)."""
        from ai_trade_bot.features import rolling
        from ai_trade_bot.modeling.meta import ABS_PER_SIGMA
        from ai_trade_bot.portfolio.construct import ConstructionState, targets_step

        n = len(self.symbols)
        window = self.construction.vol_window
        present = np.isfinite(block[:, 3])
        sigma = np.full(n, np.nan)
        for k, symbol in enumerate(self.symbols):
            if not present[k]:
                continue
            closes = np.array([*self._own_closes[symbol], block[k, 3]])[-(window + 1) :]
            if len(closes) == window + 1:
                r = np.diff(np.log(closes), prepend=np.nan)
                sigma[k] = rolling.mean_std(r, window)[1][-1]
        rows = {c: np.full(n, np.nan) for c in OUTPUT_COLUMNS}
        if len(outputs):
            by = outputs.set_index("symbol")
            for c in OUTPUT_COLUMNS:
                if c in by:
                    rows[c] = by[c].reindex(self.symbols).to_numpy(dtype=np.float64)
        magnitude = rows["magnitude"]
        fallback = ABS_PER_SIGMA * sigma
        mag = np.where(np.isfinite(magnitude), magnitude, fallback)
        ev = (rows["up"] - rows["down"]) * mag
        model_sigma = np.where(np.isfinite(magnitude), magnitude / np.sqrt(2 / np.pi), sigma)
        vol = model_sigma if self.construction.stop == "forecast" else sigma
        previous = np.array(
            [np.nan if v is None else v for v in json.loads(book["atr"])]
            if bar > 0 and book["atr"] else [np.nan] * n, dtype=np.float64,
        )  # fmt: skip
        atr_now = np.where(present, vol * block[:, 3], previous)  # carried over a missing bar
        if self.construction.stop == "none":
            atr_now = np.where(present, sigma * block[:, 3], previous)
        fee = self.settings.costs.fee()
        slip = np.full(n, float(np.asarray(self.settings.costs.slip()).reshape(-1)[0]))
        cost = 2.0 * (fee + slip)
        if self.construction.stop == "forecast":
            stop = self.construction.stop_value * sigma
        elif self.construction.stop == "percent":
            stop = np.full(n, self.construction.stop_value)
        else:
            stop = np.full(n, np.nan)
        state = (
            ConstructionState(**json.loads(book["construction"]))
            if bar > 0 and book["construction"]
            else ConstructionState.start(n)
        )
        targets = np.full(n, np.nan)
        if self.bundle is not None:
            deployed = self.bundle.deployed
            targets = targets_step(
                deployed["method"], float(deployed["margin"]), state, ev=ev,
                confidence=rows["confidence"], sigma=model_sigma, cost=cost,
                stop_distance=stop, limits=self.limits, config=self.construction,
            )  # fmt: skip
        rows_ = [*self._span_closes, (None, block[:, 3])][-(self.limits.correlation_window + 1) :]
        recent = pd.DataFrame(np.vstack([r for _, r in rows_]), columns=self.symbols)
        return {
            "atr": np.vstack([previous, atr_now]),
            "fee": fee,
            "slip": slip[None, :],
            "returns": recent.pct_change(fill_method=None),
            "targets": np.asarray(targets, dtype=np.float64).copy(),
            "confidence": rows["confidence"],
            "ev": ev,
            "state": state,
        }

    def _labels(self, history: pd.DataFrame) -> pd.DataFrame:
        config = self.labels
        parts = []
        for symbol in self.symbols:
            own = history[(history["symbol"] == symbol) & ~history["missing"].astype(bool)]
            own = own.set_index("timestamp")[list(OHLCV_COLUMNS)]
            if len(own) < 3:
                continue
            direction = labels_for(own, config)["direction"]
            parts.append(pd.DataFrame({"timestamp": own.index, "symbol": symbol,
                                       "direction": direction.to_numpy()}))  # fmt: skip
        return pd.concat(parts, ignore_index=True)

    def _targets(self, history, outputs, first_ts, ts, made):
        """This step's wanted fractions, confidences and expected returns: the
        construction over every output since the first step (the evaluation's path)."""
        n = len(self.symbols)
        if self.bundle is None:
            return np.full(n, np.nan), np.zeros(n), np.full(n, np.nan)
        from ai_trade_bot.evaluation.portfolio import model_targets, wide_outputs

        stored = self.store.outputs()
        columns = ["timestamp", "symbol", *[c for c in OUTPUT_COLUMNS if c in stored]]
        parts = [f.reindex(columns=columns) for f in (stored, outputs) if len(f)]
        if not parts:
            return np.full(n, np.nan), np.zeros(n), np.full(n, np.nan)
        rows = pd.concat(parts, ignore_index=True)
        rows = rows[pd.DatetimeIndex(rows["timestamp"]) >= ts_of(first_ts)]
        if rows.empty:
            return np.full(n, np.nan), np.zeros(n), np.full(n, np.nan)
        panel = made["panel"]
        deployed = self.bundle.deployed
        out = model_targets(
            wide_outputs(rows, panel), deployed["method"], float(deployed["margin"]), panel,
            self.settings, self.limits, self.construction,
        )  # fmt: skip
        pick = lambda frame: frame.reindex(index=[ts], columns=self.symbols).to_numpy(  # noqa: E731
            dtype=np.float64
        )[0]
        return pick(out["targets"]).copy(), pick(out["confidence"]), pick(out["ev"])

    @staticmethod
    def _no_new_entries(target: float, state: np.ndarray, account: np.ndarray, close: float):
        """Keep or reduce the open position; never open, add or flip."""
        if np.isnan(target):
            return target
        units, equity = float(state[S_UNITS]), float(account[S_EQUITY])
        if units == 0.0 or np.sign(target) != np.sign(units) or equity <= 0:
            return 0.0
        return float(np.sign(units) * min(abs(target), abs(units) * close / equity))

    @staticmethod
    def _check_finite(account: np.ndarray, states: np.ndarray, ts: pd.Timestamp) -> None:
        values = np.r_[account[[S_CASH, S_EQUITY, S_PEAK]], states[:, S_UNITS]]
        if not np.isfinite(values).all():
            raise AiTradeBotError(f"the book's step at {ts} would leave a non-finite state")

    def _step(self, ts, at, bar, first_ts, history, long_now, outputs, want, allowed, reasons,
              ev, fills, trades, account, states, last_close, paused, commands, clusters,
              book) -> dict[str, Any]:  # fmt: skip
        equity = float(account[S_EQUITY])
        weights = (
            np.nan_to_num(states[:, S_UNITS] * last_close) / equity if equity else 0 * last_close
        )
        sectors = {s: self.limits.sectors.get(s, s) for s in self.symbols}
        by_sector: dict[str, float] = {}
        by_cluster: dict[str, float] = {}
        for k, symbol in enumerate(self.symbols):
            by_sector[sectors[symbol]] = by_sector.get(sectors[symbol], 0.0) + abs(weights[k])
            key = "+".join(s for j, s in enumerate(self.symbols) if clusters[j] == clusters[k])
            by_cluster[key] = by_cluster.get(key, 0.0) + abs(weights[k])
        gross = float(np.abs(weights).sum())
        limits = {
            "max_total_exposure": {"value": gross, "limit": self.limits.max_total_exposure},
            "max_single_sector": {"value": max(by_sector.values(), default=0.0),
                                  "limit": self.limits.max_single_sector},
            "max_correlated_exposure": {"value": max(by_cluster.values(), default=0.0),
                                        "limit": self.limits.max_correlated_exposure},
            "max_position_size": {"value": float(np.abs(weights).max(initial=0.0)),
                                  "limit": self.limits.max_position_size},
            "max_daily_trades": {"value": float(account[S_TRADES_TODAY]),
                                 "limit": float(self.limits.max_daily_trades)},
            "drawdown": {"value": 1.0 - equity / float(account[S_PEAK]),
                         "limit": self.limits.dd_reduce_end},
        }  # fmt: skip
        out_by = {}
        if len(outputs):
            out_by = {r["symbol"]: r for r in outputs.to_dict("records")}
        decisions = []
        orders, updates = [], []
        pending_before = json.loads(book["pending"]) if book["pending"] else [None] * len(want)
        for k, symbol in enumerate(self.symbols):
            o = out_by.get(symbol, {})
            values = [_num(o.get(c)) for c in OUTPUT_COLUMNS]
            decisions.append(
                (symbol, at, self.version, *values, _num(ev[k]), _num(want[k]),
                 _num(allowed[k]), reasons[symbol])
            )  # fmt: skip
            held = float(weights[k])
            if abs(float(allowed[k]) - held) > self.construction_tolerance:
                cid = f"book-{self.version}-{symbol}-{at}"
                orders.append((cid, symbol, at, float(allowed[k]), held, "open", self.config.mode))
            if bar > 0 and pending_before[k] is not None:
                prev_cid = f"book-{book['model_version']}-{symbol}-{book['last_ts']}"
                made = any(f["symbol"] == symbol for f in fills)
                updates.append((prev_cid, "filled" if made else "no_fill"))
        fill_rows = [(f["symbol"], at, bar, seq, f"book-{book['model_version']}-{f['symbol']}-"
                      f"{book['last_ts']}", f["units"], f["price"], f["fee"], f["kind"])
                     for seq, f in enumerate(fills)]  # fmt: skip
        trade_rows = [(t["symbol"], int(t["entry_bar"]), int(t["exit_bar"]), at, t["side"],
                       t["units"], t["entry_price"], t["exit_price"], t["pnl"], t["fees"],
                       t["reason"]) for t in trades]  # fmt: skip
        present = set(long_now.loc[~long_now["missing"], "symbol"])
        positions = [
            (s, float(states[k, S_UNITS]), _num(states[k, S_ENTRY_PX]), _num(states[k, S_STOP]),
             _num(states[k, S_TAKE]), _num(last_close[k]), float(weights[k]), _num(allowed[k]),
             reasons[s], int(s not in present), int(s in paused), at)
            for k, s in enumerate(self.symbols)
        ]  # fmt: skip
        return {
            "ts": at,
            "candles": _candle_rows(long_now),
            "decisions": decisions,
            "fills": fill_rows,
            "trades": trade_rows,
            "orders": orders,
            "order_updates": updates,
            "equity": (
                at,
                equity,
                float(account[S_CASH]),
                gross,
                limits["drawdown"]["value"],
                json.dumps(by_sector),
                json.dumps(by_cluster),
                json.dumps(limits),
            ),
            "positions": positions,
            "commands": [c["id"] for c in commands],
            "book": {
                "first_ts": first_ts,
                "last_ts": at,
                "bar": bar,
                "account": json.dumps(state_record(account)),
                "states": json.dumps([state_record(s) for s in states]),
                "pending": json.dumps([_num(v) for v in allowed]),
                "last_close": json.dumps([_num(v) for v in last_close]),
                "paused": json.dumps(sorted(paused)),
                "model_version": self.version,
            },
        }

    construction_tolerance = 1e-9


_NO_LABELS = pd.DataFrame({"timestamp": pd.DatetimeIndex([], tz="UTC"), "symbol": [],
                           "direction": []})  # fmt: skip
_ALERTED = ("drawdown_breaker", "daily_loss", "trades_per_day", "max_single_sector",
            "max_correlated_exposure", "max_total_exposure", "max_portfolio_risk")  # fmt: skip
