"""The runner's fault handling: stale feeds, missing or broken models, real orders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.data.sources import make_exchange
from ai_trade_bot.live.broker import CcxtBroker, client_order_id
from ai_trade_bot.live.feeds import FeedEvent
from ai_trade_bot.live.runner import ModelSource, Runner, RunnerConfig
from ai_trade_bot.live.store import StateStore
from tests.data.fake_binance import FakeBinance, make_klines


class ScriptedFeed:
    """History, then exactly the given events."""

    def __init__(self, history: pd.DataFrame, events: list[FeedEvent], symbol="EURUSD") -> None:
        self._history, self._events = history, events
        self.symbol, self.timeframe = symbol, "1h"

    def history(self, rows: int | None = None) -> pd.DataFrame:
        return self._history if rows is None else self._history.iloc[-rows:]

    def events(self, after: pd.Timestamp | None = None):
        for event in self._events:
            if event.kind != "candle" or after is None or event.candle.name > after:
                yield event


def _split(tiny_run, n: int) -> tuple[pd.DataFrame, list[FeedEvent]]:
    ohlcv = tiny_run["ohlcv_clean"]
    first = ohlcv.index.get_loc(pd.Timestamp(tiny_run["evaluation"]["test_span"]["start"]))
    candles = [FeedEvent("candle", row.rename(ts)) for ts, row in ohlcv.iloc[first:].iterrows()]
    return ohlcv.iloc[:first], candles[:n]


def _runner(tmp_path: Path, feed, model: str, **config) -> tuple[Runner, StateStore]:
    store = StateStore(tmp_path / "state.db")
    runner = Runner(
        feed,
        store,
        ModelSource(model, config.pop("tracking_uri", None)),
        RunnerConfig(symbol=feed.symbol, timeframe="1h", **config),
    )
    return runner, store


def test_a_stale_feed_halts_new_entries_until_it_recovers(tiny_run, tmp_path) -> None:
    history, candles = _split(tiny_run, 60)
    events = [
        *candles[:20],
        FeedEvent("stale", message="no candle for 2h"),
        *candles[20:40],
        FeedEvent("recovered", message="back"),
        *candles[40:],
    ]
    runner, store = _runner(tmp_path, ScriptedFeed(history, events), str(tiny_run["bundle_path"]))
    runner.start()
    runner.run()
    decisions = store.decisions("EURUSD", 1000)
    halted = decisions["reason"].str.contains("entries halted: stale feed")
    assert halted.iloc[20:40].all() and not halted.iloc[:20].any() and not halted.iloc[40:].any()
    # while halted no position is opened, added to or flipped
    units = store.equity("EURUSD")["units"].to_numpy()
    for k in range(21, 41):
        assert abs(units[k]) <= abs(units[k - 1]) + 1e-9
        assert units[k] == 0 or np.sign(units[k]) == np.sign(units[k - 1])
    assert any(a["kind"] == "stale_feed" for a in store.alerts())


def test_missing_registry_falls_back_to_rsi_with_an_alert(tiny_run, tmp_path) -> None:
    history, candles = _split(tiny_run, 40)
    runner, store = _runner(
        tmp_path,
        ScriptedFeed(history, candles),
        "models:/ai_trade_bot@champion",
        tracking_uri=f"sqlite:///{tmp_path}/no/such/dir/mlflow.db",
    )
    runner.start()
    runner.run()
    decisions = store.decisions("EURUSD", 1000)
    assert len(decisions) == 40 and (decisions["reason"] == "fallback_rsi").all()
    assert (decisions["model_version"] == "fallback").all()
    rsi = decisions["rsi"]
    # the fallback trades only at RSI extremes
    assert (
        decisions.loc[decisions["signal"] != 0, "rsi"].pipe(lambda r: (r < 30) | (r > 70))
    ).all()
    assert rsi.notna().all()
    assert any(a["kind"] == "fallback" for a in store.alerts())


def test_a_corrupt_model_falls_back_to_rsi(tiny_run, tmp_path) -> None:
    broken = tmp_path / "broken_bundle"
    shutil.copytree(tiny_run["bundle_path"], broken)
    (broken / "meta.joblib").write_bytes(b"not a pickle")
    history, candles = _split(tiny_run, 10)
    runner, store = _runner(tmp_path, ScriptedFeed(history, candles), str(broken))
    runner.start()
    runner.run()
    assert runner.bundle is None and runner.version == "fallback"
    assert (store.decisions("EURUSD", 100)["reason"] == "fallback_rsi").all()
    alert = next(a for a in store.alerts() if a["kind"] == "fallback")
    assert "cannot load" in alert["message"]


def test_a_nan_output_never_trades_and_alerts(tiny_run, tmp_path, monkeypatch) -> None:
    history, candles = _split(tiny_run, 30)
    runner, store = _runner(tmp_path, ScriptedFeed(history, candles), str(tiny_run["bundle_path"]))
    runner.start()
    meta = runner.bundle.meta
    real = meta.predict_values  # the live path: one row of agent outputs at a time

    def broken(values, columns):
        out = real(values, columns)
        out[:, :3] = np.nan  # down, flat, up
        return out

    monkeypatch.setattr(meta, "predict_values", broken)
    runner.run()
    decisions = store.decisions("EURUSD", 100)
    assert (decisions["reason"] == "fallback_rsi").all()
    assert decisions["up"].isna().all()
    traded = decisions["signal"] != 0
    assert ((decisions.loc[traded, "rsi"] < 30) | (decisions.loc[traded, "rsi"] > 70)).all()
    assert sum(a["kind"] == "fallback" for a in store.alerts()) == 30


HOUR_MS = 3_600_000


def _broker(server: FakeBinance, timeout_ms: int = 5000) -> CcxtBroker:
    credentials = {"apiKey": "test-key", "secret": "test-secret"}
    exchange = make_exchange(
        "binance", api_host=server.url, timeout_ms=timeout_ms, credentials=credentials
    )
    return CcxtBroker(exchange, "BTC/USDT", backoff_seconds=0.01)


def test_real_orders_carry_the_client_id_and_a_timed_out_submission_is_not_duplicated() -> None:
    klines = make_klines(1_700_000_000_000, 50, HOUR_MS)
    with FakeBinance(klines, order_plan={1: "slow"}, slow_seconds=1.5) as server:
        broker = _broker(server, timeout_ms=700)
        first = client_order_id("3", "BTC/USDT", 1, "buy")
        order = broker.submit(first, "buy", 0.01)
        assert order["clientOrderId"] == first and order["status"] == "closed"
        assert server.orders[first]["side"] == "BUY"
        # the exchange takes the second order but answers after the client's timeout
        second = client_order_id("3", "BTC/USDT", 2, "sell")
        order = broker.submit(second, "sell", 0.01)
        assert order["clientOrderId"] == second
        assert list(server.orders) == [first, second]  # taken once, looked up, not resent
        # sending the same decision again never makes a second order
        again = broker.submit(second, "sell", 0.01)
        assert again["clientOrderId"] == second and len(server.orders) == 2
        posts = [r for r in server.requests if r["method"] == "POST"]
        assert [p["query"]["newClientOrderId"][0] for p in posts] == [first, second, second]


def test_at_start_live_mode_reconciles_stored_orders_with_the_exchange(tiny_run, tmp_path) -> None:
    history, candles = _split(tiny_run, 3)
    klines = make_klines(1_700_000_000_000, 50, HOUR_MS)
    with FakeBinance(klines, order_plan={0: "open"}) as server:
        broker = _broker(server)
        stranger = client_order_id("x", "BTC/USDT", 9, "buy")
        broker.submit(stranger, "buy", 0.01)  # an open order the runner did not make
        feed = ScriptedFeed(history, candles, symbol="BTC/USDT")
        store = StateStore(tmp_path / "state.db")
        runner = Runner(
            feed,
            store,
            ModelSource(str(tiny_run["bundle_path"])),
            RunnerConfig(symbol="BTC/USDT", timeframe="1h", mode="live"),
            broker=broker,
        )
        runner.start()
        # an order written before a crash but never sent
        unsent = client_order_id("1", "BTC/USDT", 5, "buy")
        with store.transaction() as db:
            store.add_order(
                db,
                client_order_id=unsent,
                symbol="BTC/USDT",
                ts=5,
                side="buy",
                target=0.5,
                amount=0.01,
                status="new",
                mode="live",
            )
        runner.start()  # a restart: reconcile
        assert unsent in server.orders
        stored = {o["client_order_id"]: o for o in store.orders("BTC/USDT")}
        assert stored[unsent]["status"] == "closed" and stored[unsent]["exchange_id"]
        assert any("not ours" in a["message"] for a in store.alerts())
        # and the orders of live candles go to the exchange with their client ids
        runner.run()
        sent = [o for o in store.orders("BTC/USDT") if o["client_order_id"] != unsent]
        assert all(o["client_order_id"] in server.orders for o in sent)


def test_live_mode_needs_a_broker_and_credentials(tmp_path, monkeypatch) -> None:
    from ai_trade_bot.errors import AiTradeBotError, ConfigError
    from ai_trade_bot.live.broker import load_credentials

    monkeypatch.delenv("AI_TRADE_BOT_API_KEY", raising=False)
    monkeypatch.delenv("AI_TRADE_BOT_API_SECRET", raising=False)
    with pytest.raises(ConfigError, match="--live needs exchange credentials"):
        load_credentials(tmp_path)
    with pytest.raises(AiTradeBotError, match="live mode needs a broker"):
        Runner(
            ScriptedFeed(pd.DataFrame(), []),
            StateStore(tmp_path / "s.db"),
            ModelSource("x"),
            RunnerConfig(symbol="EURUSD", timeframe="1h", mode="live"),
        )
