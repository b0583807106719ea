"""Secrets over the whole loop: keys planted in the environment and in
``conf/local/credentials.yml``, and a password inside the MLflow tracking URI (an MLflow
server on 127.0.0.1, reached over HTTP with the password in the URI). The default
pipeline, deploy and the runner with ``--live`` against the fake exchange run on a fresh
copy of the project; then every file the loop wrote (``mlruns/``, ``data/``, the reports,
the bundle, logs), the MLflow server's own store, every command's output and what the
exchange received are scanned. The exchange key may appear only in the authentication
header sent to the exchange."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from ai_trade_bot.commands import live_argv
from tests.data.fake_binance import FakeBinance, klines_of
from tests.pipelines.test_default_config import tiny
from tests.project_copy import clone, command_env, write_local_parameters

ENV_KEY, ENV_SECRET = "PLANTED-ENV-KEY-7c1d09", "PLANTED-ENV-SECRET-e42b77"
FILE_KEY, FILE_SECRET = "PLANTED-FILE-KEY-3a9f51", "PLANTED-FILE-SECRET-88d0c6"
PASSWORD = "PLANTED-MLFLOW-PASSWORD-5b6e2f"
SECRETS = (ENV_KEY, ENV_SECRET, FILE_KEY, FILE_SECRET, PASSWORD)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mlflow_server(store: Path, port: int) -> subprocess.Popen:
    """An MLflow tracking server on 127.0.0.1 (artifacts proxied into ``store``; its log,
    scanned too, in ``store/server.log``: a pipe nobody reads would block it)."""
    store.mkdir(parents=True)
    log = (store / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{store}/mlflow.db",
            "--artifacts-destination",
            str(store / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=command_env(),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise AssertionError(f"the MLflow server did not start: {(store / 'server.log').read_text()}")


def _scan(root: Path, skip: tuple[Path, ...] = ()) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or any(path.is_relative_to(s) for s in skip):
            continue
        data = path.read_bytes()
        found += [f"{path}: {s}" for s in SECRETS if s.encode() in data]
    return found


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_secrets_never_leave_their_place_over_the_whole_loop(tmp_path) -> None:
    project = clone(tmp_path / "ai_trade_bot")
    write_local_parameters(project, tiny({"ingestion": {"bundled": "eurusd"}}))
    local = project / "conf" / "local"
    (local / "credentials.yml").write_text(
        yaml.safe_dump({"exchange": {"apiKey": FILE_KEY, "secret": FILE_SECRET}})
    )
    port = _free_port()
    uri = f"http://ai:{PASSWORD}@127.0.0.1:{port}"
    (local / "mlflow.yml").write_text(yaml.safe_dump({"server": {"mlflow_tracking_uri": uri}}))
    env = command_env() | {"AI_TRADE_BOT_API_KEY": ENV_KEY, "AI_TRADE_BOT_API_SECRET": ENV_SECRET}
    outputs: list[str] = []

    def run(*args: str) -> None:
        done = subprocess.run(list(args), cwd=project, env=env, capture_output=True, text=True)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, f"{args}: {(done.stdout + done.stderr)[-4000:]}"

    server = _mlflow_server(tmp_path / "mlflow-server", port)
    try:
        run(sys.executable, "-m", "kedro", "run")  # the default pipeline, deploy included
        import pandas as pd

        candles = pd.read_parquet(project / "data/02_intermediate/ohlcv_clean.parquet")
        history = len(candles) - 200
        with FakeBinance(klines_of(candles)) as exchange:
            exchange.visible = history  # the history; then one new closed candle per poll
            argv = live_argv(
                feed="ccxt", exchange_url=exchange.url, symbol="BTC/USDT", timeframe="1h",
                tracking_uri=uri,  # the registry's champion, or (none yet) the fallback
                state=project / "data/09_live/state.db", live=True,
                map_symbol="EURUSD=BTC/USDT", max_order_notional=20_000, poll_seconds=0.01,
                stale_after=1e9, max_candles=200, fallback="rsi", confirm_ungated=True,
            )  # fmt: skip
            run(*argv)
            requests = list(exchange.requests)
    finally:
        server.terminate()
        server.wait(timeout=60)

    # the runner traded on the exchange, signed with the environment's key
    posts = [r for r in requests if r["method"] == "POST"]
    assert posts, outputs[-1][-3000:]
    assert all(r["headers"].get("X-MBX-APIKEY") == ENV_KEY for r in posts)
    # nothing the loop wrote holds a secret (conf/local is where the user put them)
    # (and tests/, whose copy of this file names the planted strings)
    leaks = _scan(project, skip=(local, project / "tests")) + _scan(tmp_path / "mlflow-server")
    assert (project / "mlruns").exists() or (tmp_path / "mlflow-server/mlflow.db").exists()
    assert not leaks, leaks
    for text in outputs:  # every command's log
        assert not [s for s in SECRETS if s in text]
    for request in requests:  # never in a query string or a body; the key only in its header
        assert not [s for s in SECRETS if s in repr(request["query"])], request["path"]
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert not [
            s for s in SECRETS for k, v in headers.items() if k != "x-mbx-apikey" and s in v
        ]
    # the tracking server holds the runs the loop logged (the URI's password reached it)
    db = (tmp_path / "mlflow-server/mlflow.db").read_bytes()
    assert b"ai_trade_bot" in db
    assert os.environ.get("AI_TRADE_BOT_API_KEY") != ENV_KEY  # planted in the children only
