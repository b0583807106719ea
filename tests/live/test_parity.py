"""The runner, replaying evaluate's held-out span, does what evaluate's backtest did."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.evaluation.strategies import make_span, model_strategy
from ai_trade_bot.features.build import build_features
from ai_trade_bot.live.feeds import ReplayFeed
from ai_trade_bot.modeling.meta import ABS_PER_SIGMA
from ai_trade_bot.registry.bundle import Bundle
from tests.live.conftest import make_runner, test_span


def _replay(tiny_run, bundle_path, state) -> dict:
    ohlcv, start, _ = test_span(tiny_run)
    feed = ReplayFeed(ohlcv, symbol="EURUSD", timeframe="1h", start=start)
    runner, store = make_runner(state, feed, str(bundle_path))
    runner.start()
    runner.run()
    return {"store": store, "start": start, "ohlcv": ohlcv, "runner": runner}


@pytest.fixture(scope="module")
def replay(tiny_run, tmp_path_factory) -> dict:
    return _replay(tiny_run, tiny_run["bundle_path"], tmp_path_factory.mktemp("parity") / "s.db")


@pytest.fixture(scope="module")
def stacker_bundle(tiny_run, tmp_path_factory) -> Path:
    """The tiny bundle with the logistic stacker over every agent as its meta-agent (the
    tiny run selects LightGBM alone, which would leave the stacking path unreplayed)."""
    bundle = Bundle.load(tiny_run["bundle_path"])
    bundle.meta = tiny_run["meta_agents"]["logistic"]
    bundle.selection = dict(bundle.selection, method="logistic", confidence_gate=0.0)
    path = tmp_path_factory.mktemp("stacker") / "bundle"
    bundle.save(path)
    return path


@pytest.mark.parametrize("which", ["selected", "stacker"])
def test_parity_every_replayed_candle_has_the_batch_features_and_predictions(
    tiny_run, replay, stacker_bundle, tmp_path, which
) -> None:
    """Features and the meta-agent's outputs are bit-identical between the runner's
    streaming path and the batch path evaluate used; every agent's within 1e-9 relative
    (the torch nets predict in float64: one row against a batch differs at 1e-16)."""
    path = tiny_run["bundle_path"] if which == "selected" else stacker_bundle
    if which == "stacker":
        replay = _replay(tiny_run, path, tmp_path / "state.db")
    store, ohlcv, start = replay["store"], replay["ohlcv"], replay["start"]
    bundle = Bundle.load(path)
    assert (bundle.method == "logistic") == (which == "stacker")
    rows = store.feature_rows("EURUSD", bundle.feature_columns, 100_000)
    rows = rows[rows.index >= start]  # (the history's last rows are stored for a resume)
    assert len(rows) >= 1000 and rows.index[0] == start
    batch = build_features(ohlcv, timeframe="1h", config=bundle.features)[bundle.feature_columns]
    np.testing.assert_array_equal(rows.to_numpy(), batch.loc[rows.index].to_numpy())

    expected = bundle.predict(ohlcv, start=start)
    decisions = store.decisions("EURUSD", 100_000)
    assert decisions.index.equals(expected.index)
    for column in ("down", "flat", "up", "confidence", "disagreement"):
        np.testing.assert_array_equal(decisions[column], expected[f"meta.{column}"], column)
    votes = decisions["votes"].map(json.loads)
    for name in bundle.agents:
        got = pd.DataFrame(list(votes.map(lambda v, n=name: v[n])), index=decisions.index)
        want = expected.filter(like=f"{name}.").rename(columns=lambda c: c.split(".", 1)[1])
        np.testing.assert_allclose(got[want.columns], want, rtol=1e-9, atol=0, err_msg=name)
    if which == "stacker":  # the stacker's outputs move with its agents' (it is not the prior)
        assert decisions["up"].std() > 1e-3


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
    # the round trips the runner stores (the trades table, ai-trade-bot trades) are the
    # backtest's, P&L and fees included
    stored = pd.DataFrame(store.trades("EURUSD")).sort_values(["exit_bar", "entry_bar"])
    assert list(stored["entry_bar"]) == list(closed["entry_bar"])
    assert list(stored["reason"]) == list(closed["reason"])
    for column in ("pnl", "fees", "exit_price", "units"):
        np.testing.assert_allclose(stored[column], closed[column], rtol=1e-9)
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
