"""Register a universe bundle and move its ``champion`` only through the gate.

The same gate as one symbol's (:func:`ai_trade_bot.registry.gate.gate`), on portfolios:

- the honesty checks of the book's evaluation: the deflated Sharpe reported (over every
  trial: symbols x models x methods x margins) and PBO at most ``max_pbo``;
- a placebo: each symbol's bars shuffled in time (whole bars, as one symbol's placebo),
  through the same features, model and book: it must show no edge;
- it beats doing nothing after costs on the validation rows (net Sharpe and trades);
- there is no champion, or the challenger beats the champion's book on the same rows.

The universe's models are registered under ``deploy.universe_model_name`` (a portfolio is
not comparable with a one-symbol champion).
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.backtest.statistics import deflated_sharpe
from ai_trade_bot.errors import AiTradeBotError
from ai_trade_bot.evaluation.honesty import classification_report
from ai_trade_bot.modeling.scoring import class_prior
from ai_trade_bot.registry.deploy import (
    _REQUIREMENTS,
    CHALLENGER,
    CHAMPION,
    current_champion,
    move_aliases,
)
from ai_trade_bot.registry.gate import DeployConfig, gate, placebo_candles
from ai_trade_bot.registry.universe_bundle import UniverseBundle, load_universe_bundle

logger = logging.getLogger(__name__)


def book_scores(
    bundle: UniverseBundle, candles: pd.DataFrame, start: str, end: str
) -> dict[str, float]:
    """Net Sharpe, trades and PSR of the bundle's book on ``start..end``, and the
    classification of its outputs over every symbol's rows (log-loss, direction hits
    against chance) against the class prior of the rows before ``start``."""
    book, outputs, labels = bundle.book(candles, start, end)
    rows = outputs.set_index(["timestamp", "symbol"])[["down", "flat", "up", "confidence"]]
    direction = labels.set_index(["timestamp", "symbol"])["direction"]
    before = direction[direction.index.get_level_values("timestamp") < pd.Timestamp(start)]
    clf = classification_report(rows, direction, class_prior(before.dropna()))
    return {
        "sharpe": float(book.metrics["sharpe"]),
        "n_trades": float(book.metrics["n_trades"]),
        "total_return": float(book.metrics["total_return"]),
        "max_gross_exposure": float(book.metrics["max_gross_exposure"]),
        "psr": float(deflated_sharpe(book.returns.to_numpy(), 1)["psr"]),
        "log_loss": float(clf["log_loss"]),
        "accuracy": float(clf["accuracy"]),
        "direction_rows": float(clf["direction_rows"]),
        "direction_ci_low": float(clf["direction_ci"][0]),
        "direction_chance": float(clf["direction_chance"]),
        "times": float(len(book.result.equity)),
    }


def placebo_universe(candles: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Each symbol's own bars shuffled in time (:func:`placebo_candles`, one seed per
    symbol), on its own times: the basket's order is gone, its bars' shapes are kept."""
    parts = []
    for k, (_, rows) in enumerate(sorted(candles.groupby("symbol"), key=lambda x: x[0])):
        rows = rows.sort_values("timestamp")
        clean = rows[~rows["missing"].astype(bool)].set_index("timestamp")
        shuffled = placebo_candles(clean, seed + 7919 * k)
        out = rows.set_index("timestamp")
        out.loc[shuffled.index, shuffled.columns] = shuffled
        parts.append(out.reset_index())
    return pd.concat(parts, ignore_index=True)


def log_universe_bundle(bundle: UniverseBundle, name: str) -> Any:
    """Log ``bundle`` as an MLflow pyfunc model (its ``predict`` takes long candles and
    returns the deployed model's outputs) in the active run, registered under ``name``."""
    import mlflow

    class UniverseBundlePyfunc(mlflow.pyfunc.PythonModel):
        def load_context(self, context: Any) -> None:
            self.bundle = UniverseBundle.load(context.artifacts["bundle"])

        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None):
            frame = model_input.copy()
            frame["timestamp"] = pd.DatetimeIndex(frame["timestamp"], tz="UTC")
            start = frame["timestamp"].min()
            return self.bundle.outputs(frame, start)

    package = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        bundle.save(Path(tmp) / "bundle")
        return mlflow.pyfunc.log_model(
            name="bundle",
            python_model=UniverseBundlePyfunc(),
            artifacts={"bundle": str(Path(tmp) / "bundle")},
            code_paths=[str(package)],
            pip_requirements=[f"{p}=={package_version(p)}" for p in _REQUIREMENTS],
            registered_model_name=name,
        )


def register_universe(
    bundle: UniverseBundle,
    candles: pd.DataFrame,
    evaluation: dict[str, Any],
    config: DeployConfig,
    model_name: str,
    lineage: dict[str, str],
) -> dict[str, Any]:
    """Register ``bundle`` (challenger), gate it against the champion on the same rows,
    move the alias if it passes; returns the deploy report. Needs an active MLflow run."""
    import mlflow

    client = mlflow.MlflowClient()
    book = evaluation["portfolio"]
    start, end = book["span"]["start"], book["span"]["end"]
    bundle.lineage = dict(lineage)
    challenger = book_scores(bundle, candles, start, end)
    placebo = book_scores(bundle, placebo_universe(candles, config.placebo_seed), start, end)
    champion_version = current_champion(client, model_name)
    champion_scores, incomparable = None, None
    if champion_version is not None:
        champion = load_universe_bundle(f"models:/{model_name}/{champion_version.version}")
        if (sorted(champion.symbols), champion.timeframe) != (
            sorted(bundle.symbols),
            bundle.timeframe,
        ):
            incomparable = (
                f"the champion (v{champion_version.version}) trades {champion.symbols} "
                f"{champion.timeframe}, the challenger {bundle.symbols} {bundle.timeframe}: "
                "not comparable on the same rows; use another deploy.universe_model_name"
            )
        else:
            try:
                champion_scores = book_scores(champion, candles, start, end)
            except AiTradeBotError as exc:
                incomparable = f"the champion cannot be scored on these rows: {exc}"
    promote, reasons = gate(challenger, champion_scores, book, placebo, config)
    if incomparable:
        promote, reasons = False, [*reasons[:-1], incomparable]
    info = log_universe_bundle(bundle, model_name)
    version = str(info.registered_model_version)
    decision = move_aliases(client, model_name, version, promote, champion_version)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    tags = {
        **{f"lineage.{k}": v for k, v in lineage.items()},
        "gate.decision": decision,
        "gate.reasons": " | ".join(reasons)[:4900],
        "gate.at": now,
        "portfolio.deployed": bundle.name,
        "portfolio.symbols": ",".join(bundle.symbols),
        "validation.start": start,
        "validation.end": end,
        **{f"validation.{k}": f"{v:.6g}" for k, v in challenger.items() if np.isfinite(v)},
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    report = {
        "model_name": model_name,
        "version": version,
        "model_uri": f"models:/{model_name}/{version}",
        "portfolio": bundle.name,
        "symbols": bundle.symbols,
        "decision": decision,
        "promoted": promote,
        "reasons": reasons,
        "at": now,
        "validation": {"start": start, "end": end},
        "challenger": challenger,
        "champion": None
        if champion_version is None
        else {"version": str(champion_version.version), **(champion_scores or {})},
        "placebo": placebo,
        "lineage": lineage,
        "aliases": {
            CHALLENGER: version,
            CHAMPION: version
            if promote
            else (None if champion_version is None else str(champion_version.version)),
        },
    }
    logger.info("deploy %s v%s: %s (%s)", model_name, version, decision, "; ".join(reasons))
    return report
