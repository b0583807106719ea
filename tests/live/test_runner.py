"""The runner's fault handling: stale feeds, missing or broken models, real orders."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ai_trade_bot.live.broker import client_order_id
from ai_trade_bot.live.config import RunnerConfig
from ai_trade_bot.live.feeds import FeedEvent
from ai_trade_bot.live.runner import Runner
from ai_trade_bot.live.store import Order, StateStore
from tests.data.fake_binance import FakeBinance, make_klines
from tests.live.conftest import ScriptedFeed, exchange_broker, make_runner, split

HOUR_MS = 3_600_000


def test_a_stale_feed_halts_new_entries_until_it_recovers(tiny_run, tmp_path) -> None:
    history, candles = split(tiny_run, 60)
    events = [
        *candles[:20],
        FeedEvent("stale", message="no candle for 2h"),
        *candles[20:40],
        FeedEvent("recovered", message="back"),
        *candles[40:],
    ]
    runner, store = make_runner(
        tmp_path / "state.db", ScriptedFeed(history, events), str(tiny_run["bundle_path"])
    )
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


def test_without_a_model_no_new_entries_and_one_alert_per_episode(tiny_run, tmp_path) -> None:
    history, candles = split(tiny_run, 40)
    registry = f"sqlite:///{tmp_path}/no/such/dir/mlflow.db"

    def runner_on(events: list[FeedEvent]) -> tuple[Runner, StateStore]:
        return make_runner(
            tmp_path / "state.db",
            ScriptedFeed(history, events),
            "models:/ai_trade_bot@champion",
            tracking_uri=registry,
        )

    runner, store = runner_on(candles[:20])
    runner.start()
    runner.run()
    decisions = store.decisions("EURUSD", 1000)
    assert len(decisions) == 20 and (decisions["reason"] == "model_unavailable").all()
    assert (decisions["model_version"] == "none").all()
    assert decisions["signal"].isna().all()  # a hold, not a flat signal
    assert store.orders("EURUSD") == [] and store.fills("EURUSD") == []
    assert [a["kind"] for a in store.alerts()].count("fallback") == 1
    store.close()
    # a restart in the same episode raises no second alert
    runner, store = runner_on(candles)
    runner.start()
    runner.run()
    assert len(store.decisions("EURUSD", 1000)) == 40
    assert [a["kind"] for a in store.alerts()].count("fallback") == 1
    assert store.runner("EURUSD")["trading"].startswith("no new entries")


def test_the_rsi_fallback_trades_only_when_asked_and_small(tiny_run, tmp_path) -> None:
    history, candles = split(tiny_run, 200)
    runner, store = make_runner(
        tmp_path / "state.db",
        ScriptedFeed(history, candles),
        "models:/ai_trade_bot@champion",
        tracking_uri=f"sqlite:///{tmp_path}/no/such/dir/mlflow.db",
        use_fallback=True,
    )
    runner.start()
    runner.run()
    decisions = store.decisions("EURUSD", 1000)
    assert (decisions["reason"] == "fallback_rsi").all()
    traded = decisions["signal"] != 0
    assert traded.any(), "the span reaches an RSI extreme, so the fallback trades"
    assert ((decisions.loc[traded, "rsi"] < 30) | (decisions.loc[traded, "rsi"] > 70)).all()
    cap = runner.settings.fallback.max_position
    assert cap == 0.05 and decisions["target"].abs().max() == pytest.approx(cap)
    equity = store.equity("EURUSD")
    exposure = (equity["units"] * equity["price"]).abs() / equity["equity"]
    assert exposure.max() <= cap * 1.01  # at most the fallback's size (one bar of drift)
    assert store.orders("EURUSD")


def test_a_corrupt_model_makes_no_new_entries(tiny_run, tmp_path) -> None:
    broken = tmp_path / "broken_bundle"
    shutil.copytree(tiny_run["bundle_path"], broken)
    (broken / "meta.joblib").write_bytes(b"not a pickle")
    history, candles = split(tiny_run, 10)
    runner, store = make_runner(tmp_path / "state.db", ScriptedFeed(history, candles), str(broken))
    runner.start()
    runner.run()
    assert runner.bundle is None and runner.version == "none"
    assert (store.decisions("EURUSD", 100)["reason"] == "model_unavailable").all()
    alert = next(a for a in store.alerts() if a["kind"] == "fallback")
    assert "cannot load" in alert["message"] and "no new entries" in alert["message"]


def test_a_nan_output_holds_and_the_model_recovers_on_the_next_candle(
    tiny_run, tmp_path, monkeypatch
) -> None:
    history, candles = split(tiny_run, 30)
    runner, store = make_runner(
        tmp_path / "state.db", ScriptedFeed(history, candles), str(tiny_run["bundle_path"])
    )
    runner.start()
    meta = runner.bundle.meta
    real = meta.predict_values  # the live path: one row of agent outputs at a time
    calls = {"n": 0}
    broken_calls = {5, 6, 12}

    def sometimes_nan(values, columns):
        out = real(values, columns)
        if len(values) > 1:  # the explanation's occlusion rows (MetaAgent.contributions)
            return out
        if calls["n"] in broken_calls:
            out[:, :3] = np.nan  # down, flat, up
        calls["n"] += 1
        return out

    monkeypatch.setattr(meta, "predict_values", sometimes_nan)
    runner.run()
    decisions = store.decisions("EURUSD", 100)
    unavailable = decisions["reason"] == "model_unavailable"
    assert list(np.flatnonzero(unavailable)) == sorted(broken_calls)
    assert decisions.loc[unavailable, "up"].isna().all()
    assert decisions.loc[~unavailable, "up"].notna().all()  # back on the next good candle
    kinds = [a["kind"] for a in reversed(store.alerts())]
    # two episodes (candles 5-6 and 12): one alert as the model drops out, one as it returns
    assert [k for k in kinds if k in ("fallback", "model_back")] == ["fallback", "model_back"] * 2


def test_real_orders_carry_the_client_id_and_a_timed_out_submission_is_not_duplicated() -> None:
    klines = make_klines(1_700_000_000_000, 50, HOUR_MS)
    with FakeBinance(klines, order_plan={1: "slow"}, slow_seconds=1.5) as server:
        broker = exchange_broker(server, timeout_ms=700)
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
    history, candles = split(tiny_run, 3)
    klines = make_klines(1_700_000_000_000, 50, HOUR_MS)
    with FakeBinance(klines, order_plan={0: "open"}) as server:
        broker = exchange_broker(server)
        stranger = client_order_id("x", "BTC/USDT", 9, "buy")
        broker.submit(stranger, "buy", 0.01)  # an open order the runner did not make
        feed = ScriptedFeed(history, candles, symbol="BTC/USDT")
        runner, store = make_runner(
            tmp_path / "state.db",
            feed,
            str(tiny_run["bundle_path"]),
            broker=broker,
            mode="live",
            symbol_map={"EURUSD": "BTC/USDT"},
            max_order_notional=50_000.0,
        )
        runner.start()
        # an order written before a crash but never sent, and one that did reach the
        # exchange before the crash (its answer was lost)
        unsent = client_order_id("1", "BTC/USDT", 5, "buy")
        arrived = client_order_id("1", "BTC/USDT", 6, "buy")
        broker.submit(arrived, "buy", 0.02)
        for cid in (unsent, arrived):
            store.add_order(Order(cid, "BTC/USDT", 5, "buy", 0.5, 0.01, "new", "live"))
        runner.start()  # a restart: reconcile
        assert unsent not in server.orders  # stale: never sent after the fact
        stored = {o["client_order_id"]: o for o in store.orders("BTC/USDT")}
        assert stored[unsent]["status"] == "cancelled" and not stored[unsent]["sent"]
        assert stored[arrived]["status"] == "closed" and stored[arrived]["sent"]
        assert stored[arrived]["filled"] == pytest.approx(0.02)
        assert store.runner("BTC/USDT")["exchange_units"] == pytest.approx(0.02)
        assert any("not ours" in a["message"] for a in store.alerts())
        # the orders of live candles go to the exchange with their client ids
        runner.run()
        sent = {o["client_order_id"] for o in store.orders("BTC/USDT") if o["sent"]}
        assert sent == set(server.orders) - {stranger}


def test_live_mode_needs_a_broker_and_credentials(tmp_path, monkeypatch) -> None:
    import pandas as pd

    from ai_trade_bot.errors import AiTradeBotError, ConfigError
    from ai_trade_bot.live.broker import load_credentials
    from ai_trade_bot.live.model import ModelSource

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
