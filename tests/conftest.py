"""Shared fixtures: small seeded synthetic candles and the bundled real data."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")


def make_ohlcv(
    n: int = 600,
    *,
    seed: int = 0,
    freq: str = "1h",
    start: str = "2024-01-01",
    price: float = 100.0,
) -> pd.DataFrame:
    """A seeded random-walk OHLCV frame that satisfies every validation rule."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp")
    close = price * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[price, close[:-1]] * np.exp(rng.normal(0, 0.001, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.005, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.005, n))
    volume = rng.uniform(100, 1000, n)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=idx
    )


@pytest.fixture
def ohlcv() -> pd.DataFrame:
    return make_ohlcv()


@pytest.fixture(scope="session")
def sp500() -> pd.DataFrame:
    from ai_trade_bot.data.sources import load_bundled

    frame, _, _ = load_bundled("sp500")
    return frame


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny bundle built by the real pipelines (bundled EURUSD, tiny agents); shared by
    the live runner and deploy tests (about 15 s, once per session)."""
    from tests.tiny_run import build_tiny_run

    return build_tiny_run(tmp_path_factory.mktemp("tiny_run"))


@pytest.fixture
def registry(tmp_path):
    """A fresh MLflow tracking store and model registry (SQLite) for one test."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment("deploy-test")
    yield uri
    mlflow.set_tracking_uri(previous)
    mlflow.set_registry_uri(previous)


@pytest.fixture(scope="session")
def planted_run(tmp_path_factory):
    """The positive control through the default pipelines (see tests/controls.py)."""
    from tests.controls import planted_candles, run_control

    return run_control(tmp_path_factory.mktemp("planted"), planted_candles())


@pytest.fixture(scope="session")
def shuffled_run(tmp_path_factory):
    """The negative control: the planted candles' bars in a shuffled order."""
    from tests.controls import planted_candles, run_control, shuffled_bars

    return run_control(tmp_path_factory.mktemp("shuffled"), shuffled_bars(planted_candles()))


@pytest.fixture(scope="session")
def dask_cluster():
    """A Dask LocalCluster of two worker processes, one thread each (the fan-out tests)."""
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    yield cluster
    cluster.close()
