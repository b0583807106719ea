"""The live state has one owner: the execution state is kept by field name with its
version (an older file migrated, an unknown one refused), and readers, controls and
metrics are scoped by symbol when one file holds two runners."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ai_trade_bot.backtest.state import STATE_FIELDS, STATE_VERSION, new_state
from ai_trade_bot.errors import AiTradeBotError
from ai_trade_bot.live.api import create_app
from ai_trade_bot.live.store import StateReader, StateStore
from tests.live.conftest import ScriptedFeed, make_runner, split

TOKEN = "store-token-0c1d"


def test_the_execution_state_is_kept_by_name_and_older_files_migrate(tmp_path) -> None:
    store = StateStore(tmp_path / "state.db")
    state = new_state(1_000.0, 19_000)
    state[1] = 2.5  # units
    store.save_runner("X", timeframe="1h", mode="paper", engine_state=state)
    record = json.loads(store.runner("X")["engine_state"])
    assert record["version"] == STATE_VERSION
    assert record["fields"]["units"] == 2.5 and list(record["fields"]) == list(STATE_FIELDS)
    np.testing.assert_array_equal(store.engine_state("X"), state)
    # the layout before this version: 21 values by position (no forced, no capped)
    store.save_runner("X", timeframe="1h", mode="paper", engine_state=state[:21].tolist())
    migrated = store.engine_state("X")
    np.testing.assert_array_equal(migrated[:21], state[:21])
    assert migrated[STATE_FIELDS.index("forced")] == 0 and migrated[-1] == 0
    store.save_runner("X", timeframe="1h", mode="paper", engine_state={"version": 7, "fields": {}})
    with pytest.raises(AiTradeBotError, match=r"version 7 .* writes version 2 and reads \[1, 2\]"):
        store.engine_state("X")
    store.save_runner("X", timeframe="1h", mode="paper", engine_state=[0.0] * 5)
    with pytest.raises(AiTradeBotError, match="5 values by position matches no layout"):
        store.engine_state("X")


def test_two_symbols_in_one_state_file_are_kept_apart(tiny_run, tmp_path) -> None:
    history, candles = split(tiny_run, 30)
    path = tmp_path / "state.db"
    runners = {}
    for symbol, n in (("EURUSD", 20), ("EURUSD.B", 10)):  # the same model, another account
        runner, store = make_runner(
            path,
            ScriptedFeed(history, candles[:n], symbol=symbol),
            str(tiny_run["bundle_path"]),
            symbol_map={"EURUSD": symbol},
        )
        runner.start()
        runner.run()
        runners[symbol] = (runner, store)
    client = TestClient(create_app(path, token=TOKEN), base_url="http://127.0.0.1")
    statuses = {s["symbol"]: s for s in client.get("/status").json()["symbols"]}
    assert set(statuses) == {"EURUSD", "EURUSD.B"}
    assert statuses["EURUSD"]["bar"] == 19 and statuses["EURUSD.B"]["bar"] == 9
    curves = client.get("/equity").json()["symbols"]
    assert len(curves["EURUSD"]["equity"]) == 20 and len(curves["EURUSD.B"]["equity"]) == 10
    only_b = client.get("/decisions?symbol=EURUSD.B&limit=100").json()
    assert len(only_b) == 10 and {d["symbol"] for d in only_b} == {"EURUSD.B"}
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    decided = {}
    for sample in families["ai_trade_bot_decisions"].samples:
        decided[sample.labels["symbol"]] = decided.get(sample.labels["symbol"], 0) + sample.value
    assert decided == {"EURUSD": 20, "EURUSD.B": 10}
    # a control names its symbol: only that runner obeys it
    headers = {"Authorization": f"Bearer {TOKEN}"}
    queued = client.post("/pause?symbol=EURUSD.B", headers=headers).json()
    assert queued["symbols"] == ["EURUSD.B"]
    assert client.post("/pause?symbol=GBPUSD", headers=headers).status_code == 404
    reader = StateReader(path)
    assert [c["symbol"] for c in runners["EURUSD"][1].pending_commands("EURUSD")] == []
    assert [c["symbol"] for c in runners["EURUSD"][1].pending_commands("EURUSD.B")] == ["EURUSD.B"]
    assert client.post("/resume", headers=headers).json()["symbols"] == ["EURUSD", "EURUSD.B"]
    assert reader.symbols() == ["EURUSD", "EURUSD.B"]
    reader.close()
