"""SIGKILL the runner at random points; after each restart it resumes exactly."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ai_trade_bot.commands import live_argv

# enough candles that the 20 kills land before the replay ends: a kill comes at most
# 0.12 s after a committed candle, and a candle takes ~10 ms
CANDLES = 400
KILLS = 20


def _command(csv: Path, start: str, bundle: Path, state: Path) -> list[str]:
    return live_argv(replay=csv, start=start, model=bundle, state=state)


def _run_cli(args: list[str]) -> None:
    """The runner's command in a child forked by a fork server that has imported torch and
    the rest already: a restart costs the runner's own start-up, not seconds of imports."""
    from ai_trade_bot.commands import main

    main(args, standalone_mode=False)


def _bar(state: Path) -> int:
    """The last committed candle's bar number (-2: nothing committed yet)."""
    if not state.exists():
        return -2
    try:
        db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1)
        row = db.execute("SELECT bar FROM runner").fetchone()
        db.close()
    except sqlite3.Error:
        return -2
    return -2 if row is None else int(row[0])


def _tables(state: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(state)
    out = {
        "orders": db.execute(
            "SELECT client_order_id, ts, side, target, amount, status FROM orders ORDER BY rowid"
        ).fetchall(),
        "fills": db.execute("SELECT * FROM fills ORDER BY bar, seq").fetchall(),
        "equity": db.execute("SELECT * FROM equity ORDER BY ts").fetchall(),
        "positions": db.execute("SELECT * FROM positions").fetchall(),
        "decisions": db.execute(
            "SELECT ts, signal, target, reason, down, flat, up, confidence, votes "
            "FROM decisions ORDER BY ts"
        ).fetchall(),
        "runner": db.execute(
            "SELECT last_ts, bar, engine_state, carry, pending_target FROM runner"
        ).fetchall(),
    }
    db.close()
    return out


def test_crash_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(
    tiny_run, tmp_path: Path
) -> None:
    ohlcv = tiny_run["ohlcv_clean"]
    start = pd.Timestamp(tiny_run["evaluation"]["test_span"]["start"])
    first = ohlcv.index.get_loc(start)
    csv = tmp_path / "eurusd.csv"
    ohlcv.iloc[: first + CANDLES].to_csv(csv)
    bundle, when = tiny_run["bundle_path"], str(start)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    reference = tmp_path / "reference.db"
    done = subprocess.run(
        _command(csv, when, bundle, reference), env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert _bar(reference) == CANDLES - 1

    crashed = tmp_path / "crashed.db"
    args = _command(csv, when, bundle, crashed)[3:]
    # a fork server that has only imported the runner (no threads yet) forks each runner
    fork = multiprocessing.get_context("forkserver")
    fork.set_forkserver_preload(["ai_trade_bot.commands", "ai_trade_bot.live.runner"])
    rng = np.random.default_rng(7)
    kills = 0
    while True:
        process = fork.Process(target=_run_cli, args=(args,))
        process.start()
        before = _bar(crashed)
        if kills < KILLS:
            # wait for progress, then kill at a random moment of a later candle (often in
            # the middle of its transaction)
            while _bar(crashed) <= before and process.is_alive():
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.12))
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
            process.join()
            if process.exitcode == -signal.SIGKILL:
                kills += 1
                continue
        # the last run, or one that finished the replay before its kill landed
        process.join(timeout=600)
        assert process.exitcode == 0
        break
    assert kills >= KILLS, f"the replay ended after {kills} kills"
    assert _bar(crashed) == CANDLES - 1

    expected, got = _tables(reference), _tables(crashed)
    for table in expected:
        assert got[table] == expected[table], table
    ids = [row[0] for row in got["orders"]]
    assert len(ids) == len(set(ids)) and len(ids) > 0
