"""A universe bundle with a planted edge, for the book runner's tests: four symbols of
planted-trend candles (a hidden regime the momentum features see), a LightGBM pooled over
them through the universe's own trainer, deployed with the equal-weight construction."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from ai_trade_bot.registry.universe_bundle import UniverseBundle, resolved_features
from ai_trade_bot.settings import PROJECT_ROOT
from tests.synthetic import planted_trend

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
SECTORS = {"AAA": "tech", "BBB": "tech", "CCC": "energy", "DDD": "energy"}


def planted_universe(n: int = 900, symbols: list[str] | None = None) -> pd.DataFrame:
    """Long aligned candles of the symbols (one missing bar in the last one: late)."""
    from ai_trade_bot.universe.panel import align, to_long

    symbols = symbols or SYMBOLS
    frames = {s: planted_trend(n, seed=20 + k, drift=0.65) for k, s in enumerate(symbols)}
    last = symbols[-1]
    frames[last] = frames[last].drop(frames[last].index[n - 30])  # a late symbol
    return to_long(align(frames))


def _params() -> dict:
    out = {}
    for name in ("features", "train", "evaluate", "risk", "portfolio", "labels"):
        path = PROJECT_ROOT / "conf" / "base" / f"parameters_{name}.yml"
        if path.exists():
            out |= yaml.safe_load(path.read_text())
    if "labels" not in out:
        out["labels"] = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_features.yml")
                                       .read_text())["labels"]  # fmt: skip
    return out


def planted_bundle(candles: pd.DataFrame, method: str = "equal") -> UniverseBundle:
    from ai_trade_bot.training.fanout import ExecutorConfig
    from ai_trade_bot.training.folds import WalkForwardConfig
    from ai_trade_bot.training.pooled import train_universe
    from ai_trade_bot.universe.inputs import universe_inputs

    params = _params()
    features = params["features"]
    X, y, _ = universe_inputs(candles, features, params["labels"], "1d")
    fit = train_universe(
        X, y, {"gbm": {"n_estimators": 60}}, pooling="pooled",
        walk_forward=WalkForwardConfig(n_folds=2), executor=ExecutorConfig(None, 1), seed=1,
        min_symbols=3,
    )  # fmt: skip
    times = pd.DatetimeIndex(candles["timestamp"])
    risk = dict(params["risk"]) | {"sectors": SECTORS}
    symbols = sorted(candles["symbol"].unique())
    if symbols != SYMBOLS:  # more symbols: five per sector
        risk["sectors"] = {s: f"sector_{k // 5}" for k, s in enumerate(symbols)}
    return UniverseBundle(
        symbols=symbols,
        timeframe="1d",
        features=resolved_features(features, "1d", times.max() - times.min()),
        labels=dict(params["labels"]),
        evaluate=dict(params["evaluate"]),
        portfolio=dict(params["portfolio"]) | {"stop": "forecast", "stop_value": 2.0},
        risk=risk,
        models=fit.models,
        deployed={"model": "gbm:pooled", "method": method, "margin": 0.0},
        training={},
    )


def save_planted(
    path: Path, method: str = "equal", symbols: list[str] | None = None
) -> tuple[pd.DataFrame, Path]:
    candles = planted_universe(symbols=symbols)
    bundle = planted_bundle(candles, method)
    bundle.save(path)
    candles.to_parquet(path.parent / "candles.parquet")
    return candles, path
