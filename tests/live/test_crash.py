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
import pytest

from ai_trade_bot.commands import live_argv
from tests.data.fake_binance import FakeBinance, klines_of
from tests.live.conftest import live_exchange_argv

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


def _bar(state: Path, table: str = "runner") -> int:
    """The last committed candle's (or a book's step's: ``table="book"``) bar number
    (-2: nothing committed yet)."""
    if not state.exists():
        return -2
    try:
        db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1)
        row = db.execute(f"SELECT bar FROM {table}").fetchone()
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
        # the prediction ledger (scored as each target candle closed) and the round trips
        "predictions": db.execute(
            "SELECT symbol, ts, agent, target_ts, down, flat, up, outcome, realised_return, "
            "hit, log_loss, scored_ts FROM predictions ORDER BY ts, agent"
        ).fetchall(),
        "trades": db.execute("SELECT * FROM trades ORDER BY exit_bar, seq").fetchall(),
    }
    db.close()
    return out


def test_sigterm_mid_replay_leaves_a_clean_resumable_state(tiny_run, tmp_path: Path) -> None:
    """SIGTERM (a service manager's stop) in the middle of a replay: the runner records a
    clean stop (stop reason, no open transaction, an intact file) and the same command
    resumes after the last committed candle to the state of an uninterrupted run."""
    ohlcv = tiny_run["ohlcv_clean"]
    start = pd.Timestamp(tiny_run["evaluation"]["test_span"]["start"])
    first = ohlcv.index.get_loc(start)
    n = 150
    csv = tmp_path / "eurusd.csv"
    ohlcv.iloc[: first + n].to_csv(csv)
    bundle, when = tiny_run["bundle_path"], str(start)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    reference, stopped = tmp_path / "reference.db", tmp_path / "stopped.db"
    done = subprocess.run(
        _command(csv, when, bundle, reference), env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]

    # a slow replay (40 candles a second) so the signal lands mid-way
    slow = live_argv(replay=csv, start=when, model=bundle, state=stopped, speed=40)
    process = subprocess.Popen(slow, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    deadline = time.time() + 240
    while _bar(stopped) < 20 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    assert "stopped; resume with the same command" in out
    bar = _bar(stopped)
    assert 20 <= bar < n - 1, "the signal landed mid-replay"
    db = sqlite3.connect(stopped)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stop_reason, stopped_at = db.execute("SELECT stop_reason, stopped_at FROM runner").fetchone()
    assert stop_reason == "stopped by a signal" and stopped_at is not None
    # every committed candle is whole: a decision, an equity row and ledger rows each
    counts = [db.execute(f"SELECT COUNT(DISTINCT ts) FROM {t}").fetchone()[0]
              for t in ("decisions", "equity")]  # fmt: skip
    assert counts == [bar + 1, bar + 1]
    db.close()

    resumed = subprocess.run(
        _command(csv, when, bundle, stopped), env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{n - 1 - bar} candles" in resumed.stdout  # only the candles after the stop
    expected, got = _tables(reference), _tables(stopped)
    for table in expected:
        assert got[table] == expected[table], table


@pytest.mark.slow
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
    assert got["orders"], "the replay sent orders"


# -- real orders: a kill around each step of an order ---------------------------------------
LIVE_CANDLES = 120
KEY, SECRET = "crash-test-key", "crash-test-secret"
KILL_AT_ORDER = 2  # the kill comes at the second order of the run (one is already filled)


def _live_cli(args: list[str], kill: str | None) -> None:
    """The live runner's command in a forked child, killed by SIGKILL at ``kill``:

    - ``before_commit``: the candle that carries the order is about to commit (the order
      row is not on disk yet);
    - ``before_send``: the order row is committed, the order not sent;
    - ``before_record``: the exchange took the order, its fill is not recorded.
    """
    os.environ |= {"AI_TRADE_BOT_API_KEY": KEY, "AI_TRADE_BOT_API_SECRET": SECRET}
    from ai_trade_bot.commands import main
    from ai_trade_bot.live.orders import OrderDesk
    from ai_trade_bot.live.store import StateStore

    seen = {"orders": 0}

    def die_at_order(original, counts):
        def wrapper(self, *args, **kwargs):
            if counts(args):
                seen["orders"] += 1
                if seen["orders"] == KILL_AT_ORDER:
                    os.kill(os.getpid(), signal.SIGKILL)
            return original(self, *args, **kwargs)

        return wrapper

    if kill == "before_commit":
        StateStore.commit_step = die_at_order(StateStore.commit_step, lambda a: a[0].orders)
    elif kill == "before_send":
        OrderDesk.send = die_at_order(OrderDesk.send, lambda a: True)
    elif kill == "before_record":
        OrderDesk.record = die_at_order(OrderDesk.record, lambda a: True)
    main(args, standalone_mode=False)


def _decided(state: Path) -> int:
    if not state.exists():
        return 0
    db = sqlite3.connect(state)
    n = db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    db.close()
    return int(n)


def _run_live(fork, server, bundle, state, kill: str | None) -> int:
    """One runner process until it ends (or is killed); its exit code."""
    args = live_exchange_argv(server, bundle, state, LIVE_CANDLES - _decided(state))[3:]
    process = fork.Process(target=_live_cli, args=(args, kill))
    process.start()
    process.join(timeout=600)
    return process.exitcode


def _exchange_position(server) -> float:
    return sum(
        float(o["executedQty"]) * (1 if o["side"] == "BUY" else -1) for o in server.orders.values()
    )


@pytest.fixture(scope="module")
def live_fork():
    fork = multiprocessing.get_context("forkserver")
    fork.set_forkserver_preload(["ai_trade_bot.commands", "ai_trade_bot.live.runner"])
    return fork


@pytest.fixture(scope="module")
def live_reference(tiny_run, live_fork, tmp_path_factory):
    """An uninterrupted run with real orders: what the exchange ends up holding."""
    from tests.live.conftest import test_span

    ohlcv, _, first = test_span(tiny_run)
    klines = klines_of(ohlcv.iloc[: first + LIVE_CANDLES])
    state = tmp_path_factory.mktemp("live-reference") / "state.db"
    with FakeBinance(klines) as server:
        server.visible = first
        assert _run_live(live_fork, server, tiny_run["bundle_path"], state, None) == 0
        book = [(cid, server.orders[cid]["side"], server.orders[cid]["executedQty"])
                for cid in server.accepted]  # fmt: skip
        return {"klines": klines, "first": first, "book": book,
                "position": _exchange_position(server)}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("kill", ["before_commit", "before_send", "before_record"])
def test_crash_with_real_orders_kill_around_an_order_then_restart(
    tiny_run, live_fork, live_reference, tmp_path: Path, kill: str
) -> None:
    """Kill the runner with SIGKILL around its second real order, restart it: the exchange
    never holds two orders for one client id, the order's fate is settled against the
    exchange, and the position is the exchange's and ends where an uninterrupted run's
    does."""
    from ai_trade_bot.live.store import StateStore

    reference = live_reference
    assert len(reference["book"]) >= KILL_AT_ORDER + 1, "the reference run trades"
    state = tmp_path / "state.db"
    with FakeBinance(reference["klines"]) as server:
        server.visible = reference["first"]
        assert _run_live(live_fork, server, tiny_run["bundle_path"], state, kill) == -signal.SIGKILL
        sent_before_restart = list(server.accepted)
        store = StateStore(state)
        orders = store.orders("BTC/USDT")
        store.close()
        if kill == "before_commit":  # the order was never written, so never sent
            assert len(orders) == len(sent_before_restart) == KILL_AT_ORDER - 1
        elif kill == "before_send":  # written under its client id, not sent
            assert len(orders) == KILL_AT_ORDER and orders[-1]["status"] == "new"
            assert orders[-1]["client_order_id"] not in sent_before_restart
        else:  # the exchange took it; this runner did not record that
            assert orders[-1]["status"] == "new" and not orders[-1]["sent"]
            assert orders[-1]["client_order_id"] in sent_before_restart
        lost = orders[-1]["client_order_id"]

        assert _run_live(live_fork, server, tiny_run["bundle_path"], state, None) == 0
        assert _decided(state) == LIVE_CANDLES

        # never two orders for one client id
        assert server.posted and max(server.posted.values()) == 1, server.posted
        store = StateStore(state)
        orders = {o["client_order_id"]: o for o in store.orders("BTC/USDT")}
        runner = store.runner("BTC/USDT")
        store.close()
        # every order's fate is the exchange's
        for cid, order in server.orders.items():
            signed = float(order["executedQty"]) * (1 if order["side"] == "BUY" else -1)
            assert orders[cid]["sent"] and orders[cid]["filled"] == pytest.approx(signed)
        position = _exchange_position(server)
        assert runner["exchange_units"] == pytest.approx(position, rel=1e-12)
        book = [(cid, server.orders[cid]["side"], server.orders[cid]["executedQty"])
                for cid in server.accepted]  # fmt: skip
    reconciles = [cid for cid, o in orders.items() if (o["note"] or "") == "reconcile"]
    if kill == "before_commit":  # the candle is redone: the very same orders
        assert book == reference["book"] and not reconciles
        assert position == reference["position"]
    elif kill == "before_send":
        # the unsent order is cancelled, never sent late; one reconcile order replaces it
        assert orders[lost]["status"] == "cancelled" and lost not in server.orders
        assert len(reconciles) == 1 and reconciles[0] in server.orders
        assert position == pytest.approx(reference["position"], rel=0.02)
    else:
        # the fill is looked up, not resent; what the shadow had not booked of it goes out
        # at once as at most one reconcile order, so the same quantities reach the exchange
        assert orders[lost]["status"] == "closed" and server.posted[lost] == 1
        assert len(reconciles) <= 1
        assert [b[1:] for b in book] == [b[1:] for b in reference["book"]]
        assert position == pytest.approx(reference["position"], rel=1e-12)
