"""The runner, replaying evaluate's held-out span, does what evaluate's backtest did."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.evaluation.strategies import make_span, model_strategy
from ai_trade_bot.features.build import build_features
from ai_trade_bot.modeling.meta import ABS_PER_SIGMA
from ai_trade_bot.registry.bundle import Bundle
from tests.live.conftest import replay_runner, test_span


@pytest.fixture(scope="module")
def replay(tiny_run, tmp_path_factory) -> dict:
    ohlcv, start, _ = test_span(tiny_run)
    runner, store = replay_runner(tiny_run, tmp_path_factory.mktemp("parity") / "state.db")
    runner.start()
    runner.run()
    return {"store": store, "start": start, "ohlcv": ohlcv, "runner": runner}


def test_parity_every_replayed_candle_has_the_batch_features_and_predictions(
    tiny_run, replay
) -> None:
    store, ohlcv, start = replay["store"], replay["ohlcv"], replay["start"]
    bundle = Bundle.load(tiny_run["bundle_path"])
    rows = store.feature_rows("EURUSD", bundle.feature_columns, 100_000)
    rows = rows[rows.index >= start]  # (the history's last rows are stored for a resume)
    assert len(rows) >= 1000 and rows.index[0] == start
    batch = build_features(ohlcv, timeframe="1h", config=bundle.features)[bundle.feature_columns]
    # relative 1e-9; the only larger differences are pandas' online rolling variance of
    # price levels (Bollinger, price z-scores), a few 1e-9 absolute on values of order 1
    np.testing.assert_allclose(rows, batch.loc[rows.index], rtol=1e-9, atol=1e-8)

    expected = bundle.predict(ohlcv, start=start)
    decisions = store.decisions("EURUSD", 100_000)
    assert decisions.index.equals(expected.index)
    for column in ("down", "flat", "up", "confidence", "disagreement"):
        np.testing.assert_allclose(decisions[column], expected[f"meta.{column}"], atol=1e-6)
    votes = decisions["votes"].map(json.loads)
    for name in bundle.agents:
        got = pd.DataFrame(list(votes.map(lambda v, n=name: v[n])), index=decisions.index)
        want = expected.filter(like=f"{name}.").rename(columns=lambda c: c.split(".", 1)[1])
        np.testing.assert_allclose(got[want.columns], want, atol=1e-5, err_msg=name)


def test_parity_trades_and_equity_equal_the_evaluate_backtest(tiny_run, replay) -> None:
    store, ohlcv, start = replay["store"], replay["ohlcv"], replay["start"]
    bundle = Bundle.load(tiny_run["bundle_path"])
    # evaluate's own path: its test-span outputs, its meta-agent, decisions and backtest
    evaluation = tiny_run["evaluation"]
    meta = tiny_run["meta_agents"][evaluation["meta_selection"]["method"]]
    output = meta.predict(tiny_run["test_agent_outputs"])
    span = make_span(ohlcv, start, ohlcv.index[-1], bundle.strategy)
    strategy = model_strategy(
        "meta_agent",
        output,
        span,
        tiny_run["labels"]["direction"],
        bundle.strategy,
        gate=bundle.gate,
        pred_vol=output["magnitude"] / ABS_PER_SIGMA,
    )
    equity = store.equity("EURUSD")["equity"]
    assert len(equity) == len(span.bars) >= 1000
    np.testing.assert_allclose(equity, strategy.equity, rtol=1e-9)
    np.testing.assert_allclose(equity, tiny_run["equity_curves"]["meta_agent"], rtol=1e-9)
    fills = pd.DataFrame(store.fills("EURUSD"))
    entries = fills[fills["kind"] == "open"]
    trades = strategy.trades
    assert len(entries) == len(trades) >= 5  # the comparison covers real round trips
    assert list(entries["bar"]) == list(trades["entry_bar"])
    np.testing.assert_allclose(entries["price"], trades["entry_price"], rtol=1e-12)
    np.testing.assert_allclose(entries["units"].abs(), trades["units"], rtol=1e-12)
    exits = fills[fills["kind"].isin(["close", "stop", "target", "risk"])]
    closed = trades[trades["reason"] != "end"]
    assert list(exits["bar"]) == list(closed["exit_bar"])
    np.testing.assert_allclose(exits["price"], closed["exit_price"], rtol=1e-12)
    assert (decisions_reason := store.decisions("EURUSD", 100_000)["reason"]).notna().all()
    assert set(decisions_reason) <= {
        "model",
        "no_edge",
        "confidence_gate",
        "disagreement_gate",
        "kill_switch",
        "prior_only",
        "fallback_rsi",
    }
