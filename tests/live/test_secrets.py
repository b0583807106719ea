"""A planted API key never appears in logs, the state store, alerts or reports."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd

from tests.data.fake_binance import FakeBinance, make_klines

KEY = "PLANTED-KEY-5f0c2a9e7d"
SECRET = "PLANTED-SECRET-b81e44c03a"


def test_secrets_never_reach_logs_or_state_with_real_orders(tiny_run, tmp_path) -> None:
    ohlcv = tiny_run["ohlcv_clean"]
    start = pd.Timestamp(tiny_run["evaluation"]["test_span"]["start"])
    first = ohlcv.index.get_loc(start)
    csv = tmp_path / "eurusd.csv"
    ohlcv.iloc[: first + 40].to_csv(csv)
    state = tmp_path / "state.db"
    env = {**os.environ, "AI_TRADE_BOT_API_KEY": KEY, "AI_TRADE_BOT_API_SECRET": SECRET}
    with FakeBinance(make_klines(1_700_000_000_000, 50, 3_600_000)) as server:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "ai_trade_bot",
                "live",
                "--replay",
                str(csv),
                "--start",
                str(start),
                "--model",
                str(tiny_run["bundle_path"]),
                "--state",
                str(state),
                "--live",
                "--exchange-url",
                server.url,
                "--symbol",
                "BTC/USDT",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        signed = [r for r in server.requests if r["method"] == "POST"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert signed, "the run sent real orders (signed with the planted key)"
    logs = done.stdout + done.stderr
    assert "order" in logs.lower()
    for secret in (KEY, SECRET):
        assert secret not in logs
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
