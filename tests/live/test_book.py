"""The universe's book runner: the held-out span replayed through it is the portfolio
backtest (trades and equity of every symbol); SIGKILL at random points resumes exactly;
pause, resume and flatten per symbol and for all; a late symbol makes no new entries."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.commands import live_argv
from ai_trade_bot.live.book import BookConfig, BookRunner, BookStore, MultiFeed, ReplayBookFeed
from ai_trade_bot.live.store import queue_command
from ai_trade_bot.registry.universe_bundle import UniverseBundle
from tests.live.book_fixture import save_planted
from tests.live.test_crash import _bar as _committed_bar
from tests.live.test_crash import _run_cli

TRADE_COLUMNS = ["symbol", "entry_bar", "exit_bar", "side", "units", "entry_price",
                 "exit_price", "pnl", "fees", "reason"]  # fmt: skip


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("book")
    candles, path = save_planted(folder / "bundle")
    return candles, path, UniverseBundle.load(path)


def _times(candles: pd.DataFrame) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(sorted(candles["timestamp"].unique()))


@pytest.mark.parametrize("method", ["equal", "topk", "strategy"])
def test_portfolio_parity_book_runner_replays_the_backtest(planted, tmp_path, method) -> None:
    """``equal`` and ``topk`` step with carried construction state (O(1) a step);
    ``strategy`` recomputes the construction over every step (it reads the recent
    decisions' outcomes): both give the backtest."""
    import dataclasses

    candles, _, bundle = planted
    bundle = dataclasses.replace(bundle, deployed=bundle.deployed | {"method": method})
    times = _times(candles)
    start, end = times[-60], times[-1]
    book, _, _ = bundle.book(candles, start, end)
    store = BookStore(str(tmp_path / "state.db"))
    runner = BookRunner(ReplayBookFeed(candles, bundle.symbols, start), store, bundle,
                        BookConfig())  # fmt: skip
    runner.start()
    runner.run()
    equity = store.equity()
    np.testing.assert_allclose(equity["equity"].to_numpy(), book.result.equity.to_numpy(),
                               rtol=1e-12)  # fmt: skip
    expected = book.result.trades
    expected = expected[expected["reason"] != "end"].reset_index(drop=True)[TRADE_COLUMNS]
    got = store.trades()[TRADE_COLUMNS]
    assert runner.fast == (method != "strategy")
    assert len(expected) >= 4, "the planted book hardly traded: the parity proves little"
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-12)
    for symbol in bundle.symbols:  # every symbol's trades, not only the book's sum
        assert (got["symbol"] == symbol).sum() == (expected["symbol"] == symbol).sum()
    # the late symbol (DDD has no candle at one time) made no new entry and was named
    alerts = store.state.alerts(limit=500)
    assert any(a["kind"] == "late" and a["symbol"] == "DDD" for a in alerts)
    store.close()


def test_portfolio_book_ledger_scores_every_symbols_forecast(planted, tmp_path) -> None:
    """The book keeps the one-symbol runner's prediction ledger for each symbol: the
    deployed agent's probabilities at every step it decided, scored when the horizon has
    passed against the labels training used, with the realised log return."""
    from ai_trade_bot.features.build import LabelConfig, labels_for
    from ai_trade_bot.live.ledger import score

    candles, _, bundle = planted
    times = _times(candles)
    start = times[-60]
    store = BookStore(str(tmp_path / "state.db"))
    runner = BookRunner(ReplayBookFeed(candles, bundle.symbols, start), store, bundle,
                        BookConfig())  # fmt: skip
    runner.start()
    runner.run()
    ledger = store.state.ledger()
    decisions = pd.read_sql_query(
        "SELECT symbol, ts, up FROM book_decisions WHERE up IS NOT NULL", store.db
    )
    assert set(ledger["symbol"]) == set(bundle.symbols)
    assert len(ledger) == len(decisions) and (ledger["agent"] == bundle.agent).all()
    labels = LabelConfig(**bundle.labels)
    scored = ledger[ledger["outcome"].notna()]
    for symbol in bundle.symbols:
        own = candles[(candles["symbol"] == symbol) & ~candles["missing"]].set_index("timestamp")
        truth = labels_for(own, labels)["direction"]
        mine = scored[scored["symbol"] == symbol]
        at = pd.DatetimeIndex(pd.to_datetime(mine["ts"], utc=True))
        # every forecast whose horizon has passed is scored, and only those
        decided = ledger[ledger["symbol"] == symbol]
        known = pd.DatetimeIndex(pd.to_datetime(decided["ts"], utc=True))
        positions = own.index.get_indexer(known)
        assert ((positions + labels.horizon < len(own)) == decided["outcome"].notna()).all()
        np.testing.assert_array_equal(mine["outcome"].to_numpy(), truth.loc[at].to_numpy())
        close = own["close"]
        later = close.shift(-labels.horizon).loc[at]
        np.testing.assert_allclose(mine["realised_return"], np.log(later / close.loc[at]),
                                   rtol=1e-12)  # fmt: skip
        hit, loss = score(mine[["down", "flat", "up"]].to_numpy(), mine["outcome"].to_numpy())
        np.testing.assert_array_equal(mine["hit"].astype(bool), hit)
        np.testing.assert_allclose(mine["log_loss"], loss, rtol=1e-9)
    assert len(scored) >= 50 * len(bundle.symbols) // 2
    store.close()
    # the health panel's endpoint reads the same ledger for the book's symbols
    from fastapi.testclient import TestClient

    from ai_trade_bot.live.api import create_app

    client = TestClient(create_app(str(tmp_path / "state.db")), base_url="http://127.0.0.1")
    health = {row["symbol"]: row for row in client.get("/models").json()["symbols"]}
    assert set(health) == set(bundle.symbols)
    for symbol, row in health.items():
        (agent,) = row["agents"]
        assert agent["agent"] == bundle.agent and row["model_version"] == runner.version
        assert agent["scored"] == int((scored["symbol"] == symbol).sum())


def test_portfolio_book_predicts_every_symbol_in_one_call_per_step(planted, tmp_path) -> None:
    """Inference is batched across symbols: the pooled model predicts once per step, on
    one block holding every symbol's row, not once per symbol."""
    candles, _, bundle = planted
    times = _times(candles)
    store = BookStore(str(tmp_path / "state.db"))
    runner = BookRunner(ReplayBookFeed(candles, bundle.symbols, times[-12]), store, bundle,
                        BookConfig())  # fmt: skip
    runner.start()
    model = bundle.models["pooled"][bundle.agent]
    calls: list[int] = []
    predict = model.predict

    def counted(X, *args, **kwargs):
        calls.append(len(X))
        return predict(X, *args, **kwargs)

    model.predict = counted
    try:
        runner.run(max_steps=10)
    finally:
        del model.predict
    assert runner.processed == 10
    assert len(calls) == 10  # one forward pass a step
    assert max(calls) == len(bundle.symbols)  # ... over every symbol's row
    store.close()


def test_portfolio_book_refuses_an_agent_that_needs_its_symbols_history(planted, tmp_path):
    """The book predicts each step's rows alone: a deployed agent that reads a window of
    rows or filters over all of them (here the regime HMM, per symbol) is refused by
    name, at start and as a new champion, not run on one row and silently wrong."""
    import dataclasses

    from ai_trade_bot.agents import get_agent_class
    from ai_trade_bot.errors import ConfigError
    from ai_trade_bot.live.universe_stream import UniverseStream, unsupported

    _, _, bundle = planted
    assert unsupported(bundle) is None
    models = {"pooled": {"regime": get_agent_class("regime")()}}
    stateful = dataclasses.replace(
        bundle, models=models, deployed=bundle.deployed | {"model": "regime:pooled"}
    )
    assert "'regime'" in unsupported(stateful)
    with pytest.raises(ConfigError, match="row-local agents only"):
        UniverseStream(stateful)

    class Source:  # a registry whose champion moved to the stateful bundle
        def version(self) -> str:
            return "2"

        def load(self):
            return stateful, "2"

    candles, _, _ = planted
    store = BookStore(str(tmp_path / "state.db"))
    runner = BookRunner(ReplayBookFeed(candles, bundle.symbols, _times(candles)[-5]), store,
                        bundle, BookConfig(reload_check_seconds=0.0), version="1",
                        source=Source())  # fmt: skip
    runner.start()
    runner._check_model()
    assert runner.version == "1" and runner.bundle is bundle
    assert any(k == "model_change" and "refused" in m for k, m in runner.alerts_sent)
    runner.run()
    assert runner.processed == 5
    store.close()


def test_portfolio_limit_book_commands_pause_resume_flatten(planted, tmp_path: Path) -> None:
    candles, _, bundle = planted
    times = _times(candles)
    state = tmp_path / "state.db"
    store = BookStore(str(state))
    feed = ReplayBookFeed(candles, bundle.symbols, times[-60])
    runner = BookRunner(feed, store, bundle, BookConfig())
    runner.start()
    events = feed.events()
    for _ in range(12):
        runner.process(next(events))
    held = pd.read_sql_query("SELECT * FROM book_positions", store.db).set_index("symbol")
    assert (held["units"] != 0).sum() >= 2
    victim = held.index[held["units"] != 0][0]
    assert queue_command(state, "flatten", "test", victim) == [victim]
    runner.process(next(events))  # decided flat at this close ...
    runner.process(next(events))  # ... filled at the next open
    after = pd.read_sql_query("SELECT * FROM book_positions", store.db).set_index("symbol")
    assert after.loc[victim, "units"] == 0.0
    queue_command(state, "pause", "test")  # every symbol
    before = after["units"].abs()
    for _ in range(6):
        runner.process(next(events))
    paused = pd.read_sql_query("SELECT * FROM book_positions", store.db).set_index("symbol")
    assert (paused["paused"] == 1).all()
    assert (paused["units"].abs() <= before + 1e-9).all()  # no new entry, nothing added
    queue_command(state, "resume", "test")
    runner.process(next(events))
    resumed = pd.read_sql_query("SELECT * FROM book_positions", store.db)
    assert (resumed["paused"] == 0).all()
    kinds = [a["message"] for a in store.state.alerts(limit=200) if a["kind"] == "command"]
    assert any("flatten" in m for m in kinds) and any("resume" in m for m in kinds)
    store.close()


class _SlowFeed:
    """A one-symbol feed whose candles come ``delay`` seconds late."""

    timeframe = "1d"

    def __init__(self, frame: pd.DataFrame, delay: float) -> None:
        self.frame, self.delay = frame, delay

    def history(self, rows=None) -> pd.DataFrame:
        return self.frame.iloc[:0]

    def events(self, after=None):
        from ai_trade_bot.live.feeds import FeedEvent

        for ts, row in self.frame.iterrows():
            time.sleep(self.delay)
            yield FeedEvent("candle", row.rename(ts))


def test_portfolio_multifeed_steps_without_a_late_symbol_after_the_bar_timeout(planted):
    candles, _, _ = planted
    frames = {
        s: g.set_index("timestamp")[["open", "high", "low", "close", "volume"]].iloc[-3:]
        for s, g in candles[~candles["missing"]].groupby("symbol")
    }
    feed = MultiFeed({"AAA": _SlowFeed(frames["AAA"], 0.0),
                      "BBB": _SlowFeed(frames["BBB"], 1.0)}, bar_timeout=0.3)  # fmt: skip
    first = next(iter(feed.events()))
    assert set(first.candles) == {"AAA"} and first.late == ["BBB"]


def _bar(state: Path) -> int:
    return _committed_bar(state, "book")


def _tables(state: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(state)
    out = {
        table: db.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
        for table, order in (
            ("book_fills", "bar, symbol, seq"),
            ("book_trades", "exit_bar, symbol"),
            ("book_orders", "ts, symbol"),
            ("book_equity", "ts"),
            ("book_positions", "symbol"),
            ("book_decisions", "ts, symbol"),
            ("predictions", "ts, symbol, agent"),
        )
    }
    out["book"] = db.execute(
        "SELECT last_ts, bar, account, states, pending, last_close FROM book"
    ).fetchall()
    db.close()
    return out


STEPS = 240  # steps take ~20 ms: enough that 20 kills land before the replay ends
KILLS = 20


@pytest.mark.slow
def test_portfolio_crash_book_runner_sigkill_at_random_points_resumes_exactly(
    planted, tmp_path: Path
) -> None:
    candles, bundle_path, _bundle = planted
    times = _times(candles)
    start = str(times[-STEPS])
    replay = bundle_path.parent / "candles.parquet"

    def command(state: Path) -> list[str]:
        return live_argv(universe=True, replay=replay, start=start, model=bundle_path,
                         state=state)  # fmt: skip

    import subprocess

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    reference = tmp_path / "reference.db"
    done = subprocess.run(command(reference), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _bar(reference) == STEPS - 1

    crashed = tmp_path / "crashed.db"
    args = command(crashed)[3:]
    fork = multiprocessing.get_context("forkserver")
    fork.set_forkserver_preload(["ai_trade_bot.commands", "ai_trade_bot.live.book"])
    rng = np.random.default_rng(11)
    kills = 0
    while True:
        process = fork.Process(target=_run_cli, args=(args,))
        process.start()
        before = _bar(crashed)
        if kills < KILLS:
            while _bar(crashed) <= before and process.is_alive():
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.1))  # often inside a step's transaction
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
            process.join()
            if process.exitcode == -signal.SIGKILL:
                kills += 1
                continue
        process.join(timeout=600)
        assert process.exitcode == 0
        break
    assert kills >= KILLS, f"the replay ended after {kills} kills"
    assert _bar(crashed) == STEPS - 1
    expected, got = _tables(reference), _tables(crashed)
    for table in expected:
        assert got[table] == expected[table], table
    assert expected["book_trades"], "the book traded"
    assert len({row[0] for row in expected["book_positions"]}) >= 3


def test_portfolio_ccxt_book_feed_polls_every_symbol_through_one_rate_limited_client() -> None:
    from ai_trade_bot.data.sources import make_exchange
    from ai_trade_bot.live.feeds import CcxtFeed
    from tests.conftest import make_ohlcv
    from tests.data.fake_binance import FakeBinance, klines_of

    markets = {"BTCUSDT": 0, "ETHUSDT": 1, "SOLUSDT": 2}
    klines = {m: klines_of(make_ohlcv(120, seed=seed)) for m, seed in markets.items()}
    with FakeBinance(klines["BTCUSDT"], by_symbol=klines) as server:
        server.visible = 100  # the history; then one more closed candle at a time
        client = make_exchange("binance", api_host=server.url, credentials={})
        assert client.enableRateLimit  # ccxt spaces every symbol's requests on one client
        feeds = {
            m.replace("USDT", "/USDT"): CcxtFeed(client, symbol=m.replace("USDT", "/USDT"),
                                                 timeframe="1h", poll_seconds=0.01,
                                                 stale_after=1e9, max_polls=50)
            for m in markets
        }  # fmt: skip
        feed = MultiFeed(feeds, bar_timeout=10.0)
        history = feed.history()
        assert sorted(history["symbol"].unique()) == sorted(feeds)
        last = pd.Timestamp(history["timestamp"].max())
        events = feed.events(after=last)
        event = next(events)
        events.close()  # the pumps stop at their next candle (or after max_polls)
        asked = {r["query"].get("symbol", [""])[0] for r in server.requests if "query" in r}
    assert event.ts == last + pd.Timedelta(hours=1)
    assert sorted(event.candles) == sorted(feeds) and event.late == []
    assert set(markets) <= asked


def test_portfolio_book_runner_trades_a_new_champion_from_the_next_step(planted, tmp_path):
    """A retrain that moves the universe's champion alias (a real MLflow registry) is
    picked up between steps, with one alert; a champion for other symbols is refused."""
    import dataclasses

    import mlflow

    from ai_trade_bot.live.book import UniverseModelSource
    from ai_trade_bot.registry.universe_deploy import log_universe_bundle

    candles, _, bundle = planted
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()

    def register(b) -> str:
        with mlflow.start_run():
            version = str(log_universe_bundle(b, "book_test").registered_model_version)
        client.set_registered_model_alias("book_test", "champion", version)
        return version

    first = register(bundle)
    source = UniverseModelSource("models:/book_test@champion", uri)
    loaded, version = source.load()
    assert version == first
    times = _times(candles)
    store = BookStore(str(tmp_path / "state.db"))
    feed = ReplayBookFeed(candles, bundle.symbols, times[-40])
    runner = BookRunner(feed, store, loaded, BookConfig(reload_check_seconds=0.0),
                        version=version, source=source)  # fmt: skip
    runner.start()
    events = feed.events()
    for _ in range(5):
        runner._check_model()
        runner.process(next(events))
    second = register(dataclasses.replace(bundle, deployed=bundle.deployed | {"method": "topk"}))
    runner._check_model()
    runner.process(next(events))
    assert runner.version == second and runner.bundle.deployed["method"] == "topk"
    other = dataclasses.replace(bundle, symbols=bundle.symbols[:3])
    register(other)  # a champion for other symbols
    runner._check_model()
    runner.process(next(events))
    assert runner.version == second  # kept
    changes = [a["message"] for a in store.state.alerts(limit=100) if a["kind"] == "model_change"]
    assert any(f"-> {second}" in m for m in changes) and any("refused" in m for m in changes)
    assert store.book()["model_version"] == second
    store.close()
