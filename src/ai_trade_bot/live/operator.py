"""What the operator commands read: ``ai-trade-bot status``, ``trades``, ``ledger`` and
``export`` over a runner's state file (read-only, through
:class:`ai_trade_bot.live.store.StateReader`, while the runner writes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.live.ledger import ledger_health
from ai_trade_bot.live.store import StateReader, ts_of


def open_reader(state_path: str | Path) -> StateReader:
    path = Path(state_path)
    if not path.exists():
        raise DataValidationError(
            f"no runner state at {path}: start one with `ai-trade-bot live` (or pass --state)"
        )
    return StateReader(path)


def status(state_path: str | Path) -> dict[str, Any]:
    """What ``/status`` says of every runner, and the book's row when a universe book
    runs in this file."""
    from ai_trade_bot.live.api import _status

    reader = open_reader(state_path)
    try:
        out: dict[str, Any] = {"symbols": [_status(reader, row) for row in reader.runners()]}
        book = reader.book(1)
        if book is not None:
            row = book["book"]
            out["book"] = {
                "symbols": json.loads(row["symbols"]),
                "mode": row["mode"],
                "model_version": row["model_version"],
                "model_state": row["model_state"],
                "last_candle": _iso(row["last_ts"]),
                "equity": book["equity"][-1]["equity"] if book["equity"] else None,
                "status": row["status"],
                "stop_reason": row["stop_reason"],
            }
        return out
    finally:
        reader.close()


def _iso(ns: int | None) -> str | None:
    return None if ns is None else ts_of(int(ns)).isoformat()


def trades(state_path: str | Path, symbol: str | None = None) -> pd.DataFrame:
    """Closed round trips of every runner (and the book's), newest first, with P&L."""
    reader = open_reader(state_path)
    try:
        rows = [r | {"account": r["symbol"]} for r in reader.trades(symbol)]
        if reader.has_book():
            rows += [r | {"account": "book"} for r in reader.book_trades(symbol)]
    finally:
        reader.close()
    columns = ["account", "symbol", "side", "entry_time", "exit_time", "units", "entry_price",
               "exit_price", "pnl", "fees", "return", "reason"]  # fmt: skip
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame["side"] = frame["side"].map(lambda s: "long" if s > 0 else "short")
    frame["entry_time"] = [_iso(t) for t in frame["entry_ts"]]
    frame["exit_time"] = [_iso(t) for t in frame["exit_ts"]]
    return frame.sort_values("exit_ts", ascending=False, kind="stable")[columns].reset_index(
        drop=True
    )


def ledger(
    state_path: str | Path,
    *,
    since: str | None = None,
    symbol: str | None = None,
    agent: str | None = None,
) -> pd.DataFrame:
    """The prediction ledger, oldest first, with times as ISO strings."""
    start = None if since is None else _since(since)
    reader = open_reader(state_path)
    try:
        frame = reader.ledger(symbol, since=start, agent=agent)
    finally:
        reader.close()
    frame.insert(2, "time", [_iso(t) for t in frame["ts"]])
    frame.insert(4, "target_time", [_iso(t) for t in frame["target_ts"]])
    frame["scored_time"] = [_iso(t) if pd.notna(t) else None for t in frame["scored_ts"]]
    return frame


def ledger_summary(frame: pd.DataFrame, window: int = 200) -> pd.DataFrame:
    """Per symbol and agent: the rolling live figures (:func:`ledger_health`)."""
    health = ledger_health(frame, window)
    keep = ["symbol", "agent", "predictions", "scored", "pending", "accuracy", "log_loss",
            "confidence", "overconfidence", "expected_return", "realised_return"]  # fmt: skip
    return pd.DataFrame([{k: h.get(k) for k in keep} for h in health], columns=keep)


def _since(text: str) -> int:
    """A candle time (a date, an ISO time, or a duration back from now such as ``7d``)."""
    try:
        delta = pd.Timedelta(text)
    except ValueError:
        delta = None
    if delta is not None and text[-1:].isalpha():
        return int((pd.Timestamp.now(tz="UTC") - delta).value)
    try:
        stamp = pd.Timestamp(text)
    except ValueError as exc:
        raise DataValidationError(
            f"--since {text!r}: not a date, time or duration (e.g. 2024-01-31, 7d)"
        ) from exc
    return int((stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).value)


def export(state_path: str | Path, out_dir: str | Path, *, since: str | None = None) -> list[Path]:
    """CSV files of the trades, the equity curves (each runner's and the book's) and the
    ledger into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    path = out / "trades.csv"
    trades(state_path).to_csv(path, index=False)
    paths.append(path)
    reader = open_reader(state_path)
    try:
        rows = [r | {"account": r["symbol"]} for r in reader.equity(None, limit=10**9)]
        if reader.has_book():
            rows += [
                {"account": "book", "symbol": None, "ts": r["ts"], "equity": r["equity"],
                 "cash": r["cash"], "drawdown": r["drawdown"]}
                for r in reader.book(10**9)["equity"]
            ]  # fmt: skip
    finally:
        reader.close()
    equity = pd.DataFrame(rows, columns=["account", "symbol", "ts", "equity", "cash", "drawdown"])
    equity.insert(3, "time", [_iso(t) for t in equity["ts"]])
    path = out / "equity.csv"
    equity.drop(columns="ts").to_csv(path, index=False)
    paths.append(path)
    path = out / "ledger.csv"
    ledger(state_path, since=since).to_csv(path, index=False)
    paths.append(path)
    return paths
