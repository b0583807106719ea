"""The live path refuses what it cannot trade safely.

Real orders against the fake exchange never pass the risk limits, a stop closes the real
position, an outage and a restart end in one order; bad candles are quarantined; an
ungated strategy never trades by default; a model of another market is refused.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import ai_trade_bot.live.runner as runner_module
from ai_trade_bot.backtest.engine import EngineConfig
from ai_trade_bot.commands import live_argv
from ai_trade_bot.errors import ConfigError
from ai_trade_bot.live.api import create_app
from ai_trade_bot.live.feeds import FeedEvent
from ai_trade_bot.strategy.config import StrategyConfig
from tests.conftest import make_ohlcv
from tests.data.fake_binance import FakeBinance, make_klines
from tests.live.conftest import ScriptedFeed, exchange_broker, make_runner, split, test_span

HOUR = pd.Timedelta(hours=1)


# -- real orders against the fake exchange -----------------------------------------------
def _candles(n: int, *, drops: dict[int, float] | None = None) -> pd.DataFrame:
    """Quiet hourly candles near 100 from a Monday; ``drops`` maps a row to a fall of
    that fraction inside it (the low and the close)."""
    frame = make_ohlcv(n, seed=3, start="2024-03-04", price=100.0)
    flat = 100.0 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.0005, n)))
    frame = frame.assign(open=flat, close=flat, high=flat * 1.001, low=flat * 0.999)
    for row, fall in (drops or {}).items():
        level = frame["open"].iloc[row] * (1 - fall)
        frame.iloc[row:, :4] *= 1 - fall  # every later candle from the new level
        frame.iloc[row, frame.columns.get_loc("open")] = level / (1 - fall)
        frame.iloc[row, frame.columns.get_loc("high")] = level / (1 - fall) * 1.001
        frame.iloc[row, frame.columns.get_loc("low")] = level * 0.999
    return frame


def _scripted(monkeypatch, targets) -> None:
    """The strategy step replaced by ``targets(ts)``: what is under test is everything
    after it (the clamp, the order, the exchange)."""
    real = runner_module.decide_targets

    def scripted(outputs, **kwargs):
        decided = real(outputs, **kwargs)
        decided["target"] = decided["target"].copy()
        decided["target"][-1] = targets(scripted.now)
        decided["reason"] = decided["reason"].copy()
        decided["reason"][-1] = "scripted"
        return decided

    original = runner_module.Runner._decide

    def decide(self, event, values):
        scripted.now = event.candle.name
        return original(self, event, values)

    monkeypatch.setattr(runner_module, "decide_targets", scripted)
    monkeypatch.setattr(runner_module.Runner, "_decide", decide)


def _live_runner(state: Path, server: FakeBinance, candles: pd.DataFrame, first: int, engine):
    history = candles.iloc[:first]
    events = [FeedEvent("candle", row.rename(ts)) for ts, row in candles.iloc[first:].iterrows()]
    return make_runner(
        state,
        ScriptedFeed(history, events, symbol="BTC/USDT"),
        "no-such-bundle",
        broker=exchange_broker(server),
        mode="live",
        settings=StrategyConfig(engine=engine),
        use_fallback=True,  # no model: the scripted targets stand in for one
        allow_ungated_live=True,
    )


def _exchange_book(server: FakeBinance, store, symbol="BTC/USDT") -> pd.DataFrame:
    """Every order the exchange accepted, in order, with the close it was sized at."""
    ours = {o["client_order_id"]: o for o in store.orders(symbol)}
    rows = []
    for cid in server.accepted:
        order = server.orders[cid]
        signed = float(order["executedQty"]) * (1 if order["side"] == "BUY" else -1)
        rows.append({"cid": cid, "ts": ours[cid]["ts"], "units": signed,
                     "price": ours[cid]["price"]})  # fmt: skip
    book = pd.DataFrame(rows)
    book["position"] = book["units"].cumsum()
    return book


def test_safety_real_orders_never_pass_the_risk_limits(tmp_path, monkeypatch) -> None:
    # day 0: the target flips every hour (the trades-per-day cap); day 1: long, and at
    # 10:00 a 10% fall (the daily loss limit); day 2: long again. Every target asks for
    # three times the equity (position, exposure and the order cap).
    first = 24 * 8  # the history; trading starts at midnight UTC
    candles = _candles(first + 24 * 3, drops={first + 24 + 10: 0.10})
    start = candles.index[first]
    assert start == start.floor("D")
    engine = EngineConfig(
        max_position=0.5,
        max_exposure=0.4,
        max_daily_loss=0.03,
        max_trades_per_day=3,
        max_order_notional=15_000.0,
        dd_reduce_start=0.5,
        dd_reduce_end=0.6,
    )

    def targets(ts):
        day = (ts - start) // pd.Timedelta(days=1)
        if day == 0:
            return 3.0 if (ts - start) // HOUR % 2 == 0 else -3.0
        return 3.0

    _scripted(monkeypatch, targets)
    with FakeBinance(make_klines(1_700_000_000_000, 10, 3_600_000)) as server:
        runner, store = _live_runner(tmp_path / "state.db", server, candles, first, engine)
        runner.start()
        runner.run()
        book = _exchange_book(server, store)
    equity = store.equity("BTC/USDT")
    decisions = store.decisions("BTC/USDT", 10_000)
    assert len(book) > 10
    # every order at most max_order_notional, valued at the close it was sized at
    assert (book["units"].abs() * book["price"]).max() <= 15_000.0 * (1 + 1e-9)
    # the position the exchange holds after each order: at most max_exposure of equity
    at = equity.set_index("ts")
    held = (book["position"] * book["price"]).abs() / at.loc[book["ts"], "equity"].to_numpy()
    assert held.max() <= 0.4 * (1 + 1e-6)  # (the exchange rounds to its lot size)
    # entries (from flat, or a flip) per UTC day they fill in (the hour after the decision,
    # the day the clamp counts them in): at most 3
    previous = book["position"].shift(fill_value=0.0)
    entries = book[(np.sign(book["position"]) != np.sign(previous)) & (book["position"] != 0)]
    days = (pd.to_datetime(entries["ts"], utc=True) + HOUR).dt.floor("D")
    assert days.value_counts().max() <= 3
    assert days.value_counts().get(start.floor("D"), 0) == 3  # the cap did bind on day 0
    # the 10% fall trips the daily loss: the position is closed, nothing adds that day
    crash_day = start.floor("D") + pd.Timedelta(days=1)
    halted = decisions[decisions["reason"].str.contains("daily_loss")]
    assert len(halted) and (halted.index.floor("D") == crash_day).all()
    after = book[pd.to_datetime(book["ts"], utc=True) >= halted.index[0]]
    same_day = after[(pd.to_datetime(after["ts"], utc=True) + HOUR).dt.floor("D") == crash_day]
    assert (same_day["units"] < 0).all()
    assert same_day["position"].iloc[-1] == pytest.approx(0, abs=1e-4)  # (lot-size dust)
    assert (book["position"].iloc[-1]) > 0  # the next day trades again
    # what the exchange received is what the state says it sent
    assert set(server.accepted) == {o["client_order_id"] for o in store.orders("BTC/USDT")
                                    if o["sent"]}  # fmt: skip
    assert np.isfinite(equity[["equity", "cash", "units"]].to_numpy()).all()


def test_safety_a_stop_hit_closes_the_real_position(tmp_path, monkeypatch) -> None:
    candles = _candles(260, drops={230: 0.05})
    engine = EngineConfig(stop="percent", stop_value=0.02, max_order_notional=1e9)
    _scripted(monkeypatch, lambda ts: 0.3)
    with FakeBinance(make_klines(1_700_000_000_000, 10, 3_600_000)) as server:
        runner, store = _live_runner(tmp_path / "state.db", server, candles, 200, engine)
        runner.start()
        runner.run()
        book = _exchange_book(server, store)
    stop_bar = candles.index[230]
    fills = pd.DataFrame(store.fills("BTC/USDT"))
    assert list(fills.loc[fills["kind"] == "stop", "ts"]) == [stop_bar.value]
    # the paper rule took the stop inside the bar; the real position is sold at its close
    bought, sold = book.iloc[0], book.iloc[1]
    assert bought["units"] > 0 and sold["units"] == pytest.approx(-bought["units"])
    assert sold["ts"] == stop_bar.value and book["position"].iloc[-1] == pytest.approx(0.0)
    assert len(book) == 2  # the stopped side stays blocked while the target is unchanged
    assert store.runner("BTC/USDT")["exchange_units"] == pytest.approx(0.0)


def test_safety_after_an_outage_and_a_restart_exactly_one_order_goes_out(
    tmp_path, monkeypatch
) -> None:
    candles = _candles(220)
    first = 200
    flip = candles.index[first + 5]
    _scripted(monkeypatch, lambda ts: 0.3 if ts < flip else -0.2)
    engine = EngineConfig(max_order_notional=1e9)
    state = tmp_path / "state.db"
    with FakeBinance(make_klines(1_700_000_000_000, 10, 3_600_000)) as server:
        runner, store = _live_runner(state, server, candles.iloc[: first + 10], first, engine)
        runner.start()
        runner.run(max_candles=5)
        assert len(server.accepted) == 1  # the long, filled
        bought = store.runner("BTC/USDT")["exchange_units"]
        server.down = True  # the exchange goes away; the target flips to short
        runner.run()
        failed = [o for o in store.orders("BTC/USDT") if o["status"] == "failed"]
        assert len(failed) == 5 and len(server.accepted) == 1
        # the shadow booked no fill the exchange did not report: it still holds the long
        fills = pd.DataFrame(store.fills("BTC/USDT"))
        assert (fills["ts"] <= flip.value).all()
        assert store.equity("BTC/USDT")["units"].iloc[-1] > 0
        store.close()  # the runner is gone; the exchange comes back; it restarts
        server.down = False
        runner, store = _live_runner(state, server, candles.iloc[: first + 10], first, engine)
        runner.start()
        assert len(server.accepted) == 2  # exactly one order, toward the current target
        orders = {o["client_order_id"]: o for o in store.orders("BTC/USDT")}
        assert all(orders[o["client_order_id"]]["status"] == "cancelled" for o in failed)
        last = orders[server.accepted[-1]]
        assert last["side"] == "sell" and "reconcile" in last["note"]
        held = store.runner("BTC/USDT")["exchange_units"]
        engine_state = store.runner("BTC/USDT")
        close = candles["close"].iloc[first + 9]
        wanted = -0.2 * store.equity("BTC/USDT")["equity"].iloc[-1] / close
        assert bought > 0 and held == pytest.approx(wanted, rel=1e-6)
        assert engine_state["pending_target"] == pytest.approx(-0.2)  # the shadow follows
        assert set(server.accepted) == {o for o, r in orders.items() if r["sent"]}


# -- bad candles ----------------------------------------------------------------------------
@pytest.mark.slow
def test_safety_bad_candles_in_a_replay_are_quarantined_and_trading_goes_on(
    tiny_run, tmp_path
) -> None:
    ohlcv, start, first = test_span(tiny_run)
    rows = ohlcv.iloc[: first + 160].copy()
    nan_open, zero_close, nan_close = (rows.index[first + k] for k in (10, 20, 30))
    rows.loc[nan_open, "open"] = np.nan
    rows.loc[zero_close, "close"] = 0.0
    rows.loc[nan_close, "close"] = np.nan
    positions = list(range(len(rows)))
    dup, late = first + 40, first + 50
    positions.insert(dup + 1, dup)  # a duplicate right after its row
    positions.remove(late)
    positions.insert(positions.index(late + 5) + 1, late)  # five rows late: out of order
    gap = [p for p in range(first + 100, first + 124)]  # 24 hours missing (weekdays)
    assert (rows.index[first + 124] - rows.index[first + 99]) < pd.Timedelta(days=2)
    positions = [p for p in positions if p not in gap]
    replay = tmp_path / "eurusd.csv"
    rows.iloc[positions].to_csv(replay)
    state = tmp_path / "state.db"
    argv = live_argv(replay=replay, start=str(start), model=tiny_run["bundle_path"], state=state)
    for attempt in range(2):  # the second run resumes after the end: no crash loop
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (attempt, done.stderr[-3000:])
    db = sqlite3.connect(state)
    quarantined = db.execute("SELECT ts, rule FROM quarantine ORDER BY at").fetchall()
    assert [(pd.Timestamp(ts, tz="UTC"), rule) for ts, rule in quarantined] == [
        (nan_open, "prices_finite_positive"),
        (zero_close, "prices_finite_positive"),
        (nan_close, "prices_finite_positive"),
        (rows.index[dup], "duplicate"),
        (rows.index[late], "out_of_order"),
    ]
    alerts = [m for (m,) in db.execute("SELECT message FROM alerts WHERE kind = 'bad_candle'")]
    assert len(alerts) == 5 and all("quarantined" in m for m in alerts)
    assert sum("prices_finite_positive" in m for m in alerts) == 3
    gaps = [m for (m,) in db.execute("SELECT message FROM alerts WHERE kind = 'gap'")]
    assert len(gaps) == 1 and "24 candle(s) missing" in gaps[0]
    equity = np.array(db.execute("SELECT equity, cash, units FROM equity").fetchall(), float)
    assert np.isfinite(equity).all() and len(equity) == 160 - 24 - 4  # every good candle
    assert db.execute("SELECT COUNT(*) FROM fills WHERE units IS NULL").fetchone()[0] == 0
    # the model kept deciding after the bad candles (it did not switch off)
    reasons = [r for (r,) in db.execute("SELECT reason FROM decisions ORDER BY ts")]
    assert sum(r.startswith("model_unavailable") for r in reasons[40:]) == 0
    assert db.execute("SELECT stop_reason FROM runner").fetchone()[0] == "the replay ended"


# -- no ungated strategy, a model for this market only --------------------------------------
@pytest.mark.slow
def test_safety_without_a_champion_no_orders_and_the_asked_for_fallback_stays_small(
    tiny_run, tmp_path
) -> None:
    ohlcv, start, first = test_span(tiny_run)
    replay = tmp_path / "eurusd.csv"
    ohlcv.iloc[: first + 150].to_csv(replay)
    registry = f"sqlite:///{tmp_path}/registry/mlflow.db"
    for fallback in ("none", "rsi"):
        state = tmp_path / f"{fallback}.db"
        argv = live_argv(replay=replay, start=str(start), state=state, tracking_uri=registry,
                         fallback=fallback)  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        db = sqlite3.connect(state)
        orders = db.execute("SELECT target FROM orders").fetchall()
        exposure = db.execute("SELECT MAX(ABS(units * price / equity)) FROM equity").fetchone()
        if fallback == "none":
            assert orders == [] and exposure[0] == 0.0
        else:
            assert orders and max(abs(t) for (t,) in orders) <= 0.05
            assert 0 < exposure[0] <= 0.05 * 1.01
        kinds = [k for (k,) in db.execute("SELECT kind FROM alerts")]
        assert kinds.count("fallback") == 1


def test_safety_a_bundle_for_another_market_is_refused(tiny_run, tmp_path) -> None:
    history, candles = split(tiny_run, 30)
    for symbol, timeframe, why in (
        ("GBPUSD", "1h", "trained on EURUSD, the feed is GBPUSD"),
        ("EURUSD", "4h", "trained on 1h candles, the feed gives 4h"),
    ):
        state = tmp_path / f"{symbol}{timeframe}.db"
        runner, store = make_runner(
            state, ScriptedFeed(history, candles, symbol, timeframe), str(tiny_run["bundle_path"])
        )
        runner.start()
        runner.run()
        assert runner.bundle is None and runner.model_state == "refused"
        alert = next(a for a in store.alerts() if a["kind"] == "fallback")
        assert why in alert["message"] and "no new entries" in alert["message"]
        assert store.orders(symbol) == []
        client = TestClient(create_app(state), base_url="http://127.0.0.1")
        status = client.get(f"/status?symbol={symbol}").json()
        assert status["model_state"] == "refused" and why in status["model_note"]
        assert status["trading"].startswith("no new entries")


@pytest.mark.slow
def test_safety_live_refuses_a_replay_and_a_market_the_model_was_not_trained_on(
    tiny_run, tmp_path
) -> None:
    done = subprocess.run(
        live_argv(replay="eurusd", model=tiny_run["bundle_path"], live=True),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "AI_TRADE_BOT_API_KEY": "k", "AI_TRADE_BOT_API_SECRET": "s"},
    )
    assert done.returncode == 2 and "a replay is not the market: it is refused" in done.stderr
    history, candles = split(tiny_run, 3)
    with FakeBinance(make_klines(1_700_000_000_000, 10, 3_600_000)) as server:
        config = {"broker": exchange_broker(server), "mode": "live", "max_order_notional": 1e4}
        feed = ScriptedFeed(history, candles, symbol="BTC/USDT")
        runner, _ = make_runner(tmp_path / "a.db", feed, str(tiny_run["bundle_path"]), **config)
        with pytest.raises(ConfigError, match="trained on EURUSD, the feed is BTC/USDT"):
            runner.start()
        mapped = config | {"symbol_map": {"EURUSD": "BTC/USDT"}}
        runner, _ = make_runner(tmp_path / "b.db", feed, str(tiny_run["bundle_path"]), **mapped)
        runner.start()
        assert runner.model_state == "ok"
        uncapped = config | {"symbol_map": {"EURUSD": "BTC/USDT"}, "max_order_notional": None}
        runner, _ = make_runner(tmp_path / "c.db", feed, str(tiny_run["bundle_path"]), **uncapped)
        with pytest.raises(ConfigError, match="--live needs a cap on every order"):
            runner.start()


# -- the API and the process --------------------------------------------------------------
def test_safety_a_foreign_host_gets_400_and_pages_carry_a_csp(tiny_run, tmp_path) -> None:
    from tests.live.conftest import replay_runner

    runner, _ = replay_runner(tiny_run, tmp_path / "state.db")
    runner.start()
    runner.run(max_candles=2)
    app = create_app(tmp_path / "state.db", allowed_hosts=["bot.example.org"])
    foreign = TestClient(app, base_url="http://rebind.attacker.example")
    assert foreign.get("/status").status_code == 400
    for host in ("127.0.0.1", "localhost", "bot.example.org"):
        response = TestClient(app, base_url=f"http://{host}:8765").get("/")
        assert response.status_code == 200, host
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert "<script>" not in response.text  # no inline script on the page


@pytest.mark.slow
def test_safety_sigterm_stops_like_ctrl_c_and_the_status_says_stopped(tiny_run, tmp_path) -> None:
    ohlcv, start, first = test_span(tiny_run)
    replay = tmp_path / "eurusd.csv"
    ohlcv.iloc[: first + 400].to_csv(replay)
    state = tmp_path / "state.db"
    argv = live_argv(replay=replay, start=str(start), model=tiny_run["bundle_path"], state=state,
                     speed=20)  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    app = create_app(state)
    client = TestClient(app, base_url="http://127.0.0.1")
    while time.monotonic() < deadline:
        if state.exists() and client.get("/status?symbol=eurusd").status_code == 200:
            status = client.get("/status?symbol=eurusd").json()
            if status["bar"] is not None and status["bar"] >= 3:
                break
        time.sleep(0.2)
    assert client.get("/status?symbol=eurusd").json()["runner"] == "running"
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    assert f"stopped; resume with the same command (state in {state})" in out
    status = client.get("/status?symbol=eurusd").json()
    assert status["runner"] == "stopped" and status["stop_reason"] == "stopped by a signal"
