"""The status API over a real runner's state: fields, commands behind a token, metrics."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ai_trade_bot.live.api import create_app
from tests.live.conftest import replay_runner

TOKEN = "api-token-7b1f9e2c"
LOCAL = "http://127.0.0.1"  # the API answers only local Host names (and configured ones)


def client_for(path, **options) -> TestClient:
    return TestClient(create_app(path, **options), base_url=LOCAL)


def _traded(tiny_run, path):
    runner, store = replay_runner(tiny_run, path)
    runner.start()
    runner.run(max_candles=30)
    return {"path": path, "runner": runner, "store": store}


@pytest.fixture(scope="module")
def state(tiny_run, tmp_path_factory):
    """A runner that traded 30 candles of the test span, and its state file: read only
    (the tests pass in any order: ``pytest -p random_order --random-order``)."""
    return _traded(tiny_run, tmp_path_factory.mktemp("api") / "state.db")


@pytest.fixture
def own_state(tiny_run, tmp_path):
    """The same, for a test that moves the runner on."""
    return _traded(tiny_run, tmp_path / "state.db")


def test_every_read_endpoint_answers_with_the_documented_fields(state, tiny_run, tmp_path) -> None:
    drift_dir = tmp_path / "reports"
    drift_dir.mkdir()
    (drift_dir / "drift_summary.json").write_text(json.dumps({"dataset_drift": True}))
    client = client_for(state["path"], token=TOKEN, drift_dir=drift_dir)
    assert client.get("/health").json()["status"] == "ok"
    status = client.get("/status?symbol=EURUSD").json()
    assert [s["symbol"] for s in client.get("/status").json()["symbols"]] == ["EURUSD"]
    assert client.get("/status?symbol=GBPUSD").status_code == 404
    assert {
        "mode",
        "model_version",
        "last_candle",
        "feed_state",
        "halted",
        "halted_reason",
        "paused",
        "equity",
    } <= set(status)
    assert status["mode"] == "paper" and status["feed_state"] == "ok"
    assert status["model_version"].startswith("local:")
    positions = client.get("/positions").json()
    assert positions[0]["symbol"] == "EURUSD" and {"units", "cash", "equity"} <= set(positions[0])
    orders = client.get("/orders").json()
    assert set(orders) == {"orders", "fills"}
    decisions = client.get("/decisions?limit=5").json()
    assert len(decisions) == 5
    latest = decisions[0]
    assert set(latest["votes"]) == set(tiny_run["deploy_bundle"].agents)
    assert {"down", "flat", "up", "confidence"} <= set(latest["votes"]["gbm"])
    assert {"confidence", "up"} <= set(latest["meta"]) and latest["reason"]
    equity = client.get("/equity").json()["symbols"]["EURUSD"]
    assert len(equity["time"]) == len(equity["equity"]) == 30
    assert client.get("/drift").json()["status"] == "drift"
    assert client.get("/").text.count("equity-chart") >= 1
    assert client.get("/static/plotly.min.js").text.startswith("/**")


def test_metrics_parse_as_prometheus_text(state) -> None:
    client = client_for(state["path"], token=TOKEN)
    response = client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert {
        "ai_trade_bot_equity",
        "ai_trade_bot_position_units",
        "ai_trade_bot_decisions",
        "ai_trade_bot_decision_latency_ms",
        "ai_trade_bot_feed_lag_seconds",
        "ai_trade_bot_alerts",
    } <= set(families)
    decided = sum(s.value for s in families["ai_trade_bot_decisions"].samples)
    assert decided == 30
    count = next(
        s.value
        for s in families["ai_trade_bot_decision_latency_ms"].samples
        if s.name.endswith("_count")
    )
    assert count == 30


def test_commands_need_the_token_and_the_runner_obeys_them(own_state, caplog) -> None:
    state = own_state
    client = client_for(state["path"], token=TOKEN)
    assert client.post("/pause").status_code == 401
    assert client.post("/pause", headers={"Authorization": "Bearer wrong"}).status_code == 401
    off = client_for(state["path"], token=None)
    assert off.post("/pause", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 403
    with caplog.at_level(logging.DEBUG):
        ok = client.post(
            "/pause",
            headers={"Authorization": f"Bearer {TOKEN}", "X-Requested-By": "mallory"},
        )
    # the audit names the token that asked, never what a header claims
    assert ok.status_code == 200 and ok.json()["requested_by"] == "token:api"
    runner, store = state["runner"], state["store"]
    runner.run(max_candles=1)
    assert client.get("/status?symbol=EURUSD").json()["paused"] is True
    assert client.get("/status?symbol=EURUSD").json()["halted_reason"] == "paused"
    command = store.db.execute("SELECT * FROM commands WHERE command = 'pause'").fetchone()
    assert command["requested_by"] == "token:api" and command["applied_at"] is not None
    client.post("/flatten", headers={"Authorization": f"Bearer {TOKEN}"})
    client.post("/resume", headers={"Authorization": f"Bearer {TOKEN}"})
    runner.run(max_candles=1)
    response = client.get("/status?symbol=EURUSD")
    assert response.status_code == 200, response.text
    assert response.json()["paused"] is False
    response = client.get("/decisions?limit=1")
    assert response.status_code == 200, response.text
    decision = response.json()[0]
    assert decision["reason"] == "flatten" and decision["target"] == 0.0
    # one alert each for pause, flatten and resume, naming the token that asked
    commands = [a["message"] for a in store.alerts() if a["kind"] == "command"]
    assert sorted(m.split()[0] for m in commands) == ["flatten", "pause", "resume"]
    assert all("asked by token:api" in m for m in commands)
    # the token appears in no response, no page, no log record
    for path in ("/status", "/decisions", "/orders", "/", "/metrics", "/alerts"):
        assert TOKEN not in client.get(path).text
    assert TOKEN not in caplog.text
