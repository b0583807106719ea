"""A planted API key never appears in logs, the state store, alerts or what is sent to
the exchange outside its authentication header."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.data.fake_binance import FakeBinance, klines_of
from tests.live.conftest import live_exchange_argv, test_span

KEY = "PLANTED-KEY-5f0c2a9e7d"
SECRET = "PLANTED-SECRET-b81e44c03a"


@pytest.mark.slow
def test_secrets_never_reach_logs_state_or_requests_with_real_orders(tiny_run, tmp_path) -> None:
    ohlcv, _, first = test_span(tiny_run)
    state = tmp_path / "state.db"
    env = {**os.environ, "AI_TRADE_BOT_API_KEY": KEY, "AI_TRADE_BOT_API_SECRET": SECRET}
    with FakeBinance(klines_of(ohlcv.iloc[: first + 140])) as server:
        server.visible = first  # the history; then one new closed candle per poll
        done = subprocess.run(
            live_exchange_argv(server, tiny_run["bundle_path"], state, 120),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        requests = list(server.requests)
        accepted = list(server.accepted)
    assert done.returncode == 0, done.stderr[-3000:]
    assert accepted, "the run sent real orders (signed with the planted key)"
    logs = done.stdout + done.stderr
    assert "order" in logs.lower()
    for secret in (KEY, SECRET):
        assert secret not in logs
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
        for request in requests:  # never in a query string or a body; the key only in
            assert secret not in repr(request["query"]), request["path"]  # its header
            headers = {k.lower(): v for k, v in request["headers"].items()}
            assert all(secret not in v for k, v in headers.items() if k != "x-mbx-apikey")
    assert any(r["headers"].get("X-MBX-APIKEY") == KEY for r in requests if r["method"] == "POST")
