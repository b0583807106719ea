"""The live path's guards: the inference timeout (a slow model falls back for that candle,
with an alert, and comes back exact) and the memory cap (a clean, resumable stop)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ai_trade_bot.live.runner import MemoryCapError
from tests.live.conftest import ScriptedFeed, make_runner, split

SLOW_AT = 10  # the candle whose model run overruns


def _replay(tiny_run, path, n=40, **config):
    history, candles = split(tiny_run, n)
    runner, store = make_runner(
        path, ScriptedFeed(history, candles), str(tiny_run["bundle_path"]), **config
    )
    runner.start()
    return runner, store


def test_inference_timeout_falls_back_for_that_candle_then_trades_exactly(
    tiny_run, tmp_path
) -> None:
    reference, ref_store = _replay(tiny_run, tmp_path / "reference.db")
    reference.run()
    runner, store = _replay(tiny_run, tmp_path / "slow.db", inference_timeout=0.5)
    stream = runner.model.stream
    real = stream.step
    calls = {"n": 0}

    def sometimes_slow(window, state):
        calls["n"] += 1
        if calls["n"] == SLOW_AT + 1:
            time.sleep(1.0)
        return real(window, state)

    stream.step = sometimes_slow
    events = runner.feed.events

    def paced(after=None):  # candles 0.1 s apart, as a live feed brings them
        for event in events(after):
            time.sleep(0.1)
            yield event

    runner.feed.events = paced
    runner.run()
    got = store.decisions("EURUSD", 1000)
    want = ref_store.decisions("EURUSD", 1000)
    fell_back = np.flatnonzero(got["up"].isna().to_numpy())
    assert fell_back[0] == SLOW_AT and len(fell_back) >= 1
    assert (got["reason"].iloc[fell_back] == "model_unavailable").all()
    assert want["up"].notna().all()
    alerts = [a for a in store.alerts() if a["kind"] == "inference_timeout"]
    assert len(alerts) == len(fell_back)
    assert "0.5 s" in alerts[-1]["message"]
    # after the overrun the stream restarts from the stored candles: the outputs are the
    # uninterrupted run's again
    after = fell_back[-1] + 1
    assert after < len(got) - 5
    for column in ("down", "flat", "up", "confidence"):
        np.testing.assert_allclose(
            got[column].iloc[after:], want[column].iloc[after:], rtol=1e-9, atol=1e-12
        )


def test_memory_cap_stops_cleanly_and_the_runner_resumes(tiny_run, tmp_path) -> None:
    path = tmp_path / "capped.db"
    runner, store = _replay(tiny_run, path, n=20, memory_cap_mb=1.0)
    with pytest.raises(MemoryCapError, match="memory_cap_mb 1 MB"):
        runner.run()
    runner.stop("memory cap")
    assert len(store.decisions("EURUSD", 100)) == 1  # the candle before the check committed
    assert store.alerts()[0]["kind"] == "memory_cap"
    store.close()
    resumed, store = _replay(tiny_run, path, n=20)
    resumed.run()
    reference, ref_store = _replay(tiny_run, tmp_path / "reference.db", n=20)
    reference.run()
    np.testing.assert_allclose(
        store.equity("EURUSD")["equity"], ref_store.equity("EURUSD")["equity"], rtol=1e-12
    )
