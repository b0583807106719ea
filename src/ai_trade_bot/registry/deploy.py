"""Register a bundle in the MLflow model registry and move ``champion`` only through a gate.

Every new version gets the ``challenger`` alias. ``champion`` moves to it when:

- the honesty checks pass: the deflated Sharpe was reported, PBO is at most
  ``max_pbo``, and a placebo (the same bars in a shuffled order, so no order is left to
  predict) shows no edge (PSR below ``max_placebo_psr``, accuracy interval covering
  chance); and
- it beats doing nothing after costs on the validation rows: a net Sharpe above
  ``min_champion_sharpe`` from at least ``min_champion_trades`` trades (a model that
  never trades, or loses, is not a champion, the first one included); and
- there is no champion yet, or the challenger beats it on the same validation rows (the
  challenger's held-out span, neither trained on) by ``min_sharpe_gain`` in net Sharpe and
  ``min_log_loss_gain`` in log-loss.

Every decision, promoted or not, and why, goes to the deploy report and to the version's
tags. ``rollback`` moves ``champion`` back to the champion before it.
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import pandas as pd

from ai_trade_bot.errors import AiTradeBotError
from ai_trade_bot.registry.bundle import Bundle, load_bundle
from ai_trade_bot.registry.gate import DeployConfig, gate, placebo_scores, validation_scores

logger = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"

_REQUIREMENTS = (
    "torch",
    "pytorch-lightning",
    "lightgbm",
    "hmmlearn",
    "arch",
    "pandas",
    "pandas-ta",
    "numpy",
    "scikit-learn",
    "scipy",
    "numba",
)


class DeployError(AiTradeBotError):
    """The registry could not be used as asked (no previous champion, no such model)."""


def pyfunc_class() -> type:
    """The MLflow pyfunc wrapper (built lazily: importing mlflow costs seconds)."""
    import mlflow

    class BundlePyfunc(mlflow.pyfunc.PythonModel):
        """Serve a bundle: input candles (``timestamp`` and OHLCV), output every agent's
        and the meta-agent's outputs for the candles after the warm-up."""

        def load_context(self, context: Any) -> None:
            self.bundle = Bundle.load(context.artifacts["bundle"])

        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None):
            candles = model_input.set_index(pd.DatetimeIndex(model_input["timestamp"], tz="UTC"))
            out = self.bundle.predict(candles.drop(columns="timestamp").astype("float64"))
            return out.reset_index(drop=True)

    return BundlePyfunc


def log_bundle(bundle: Bundle, candles: pd.DataFrame, name: str) -> Any:
    """Log ``bundle`` as a pyfunc model with a signature and an input example in the active
    run and register it under ``name``; returns MLflow's ModelInfo."""
    import mlflow
    from mlflow.models import infer_signature

    package = Path(__file__).resolve().parent
    example = candles.iloc[-(bundle.warmup_rows + 2) :].reset_index()
    example = example.rename(columns={example.columns[0]: "timestamp"})
    example["timestamp"] = example["timestamp"].dt.tz_localize(None)
    with tempfile.TemporaryDirectory() as tmp:
        bundle.save(Path(tmp) / "bundle")
        output = bundle.predict(candles.iloc[-(bundle.warmup_rows + 2) :]).reset_index(drop=True)
        return mlflow.pyfunc.log_model(
            name="bundle",
            python_model=pyfunc_class()(),
            artifacts={"bundle": str(Path(tmp) / "bundle")},
            code_paths=[str(package)],
            signature=infer_signature(example, output),
            input_example=example,
            pip_requirements=[f"{p}=={package_version(p)}" for p in _REQUIREMENTS],
            registered_model_name=name,
        )


def current_champion(client: Any, name: str) -> Any | None:
    """The champion's model version, or None ("no champion yet" is a normal state)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def move_aliases(
    client: Any, name: str, version: str, promote: bool, champion_version: Any | None
) -> str:
    """``challenger`` to ``version``; ``champion`` too when the gate passed (the champion
    before it recorded for a rollback). Returns the decision's name."""
    client.set_registered_model_alias(name, CHALLENGER, version)
    if promote:
        client.set_registered_model_alias(name, CHAMPION, version)
        if champion_version is not None:
            client.set_model_version_tag(
                name, version, "previous_champion", str(champion_version.version)
            )
    if promote:
        return "promoted" if champion_version is not None else "first_champion"
    return "kept_champion" if champion_version is not None else "no_champion"


def register_and_gate(
    bundle: Bundle,
    candles: pd.DataFrame,
    labels: pd.Series,
    evaluation: dict[str, Any],
    config: DeployConfig,
    lineage: dict[str, str],
) -> dict[str, Any]:
    """Register ``bundle`` (challenger), compare it with the champion, move the alias if it
    passes; returns the deploy report. Needs an active MLflow run."""
    import mlflow

    client = mlflow.MlflowClient()
    span = evaluation["test_span"]
    start, end = span["start"], span["end"]
    bundle.lineage = dict(lineage)
    challenger_scores = validation_scores(bundle, candles, labels, start, end)
    placebo = placebo_scores(bundle, candles, start, end, config.placebo_seed)
    champion_version = current_champion(client, config.model_name)
    champion_scores, incomparable = None, None
    if champion_version is not None:
        champion = load_bundle(f"models:/{config.model_name}/{champion_version.version}")
        if (champion.symbol, champion.timeframe) != (bundle.symbol, bundle.timeframe):
            incomparable = (
                f"the champion (v{champion_version.version}) trades {champion.symbol} "
                f"{champion.timeframe}, the challenger {bundle.symbol} {bundle.timeframe}: not "
                "comparable on the same rows; use another deploy.model_name per market"
            )
        else:
            try:
                champion_scores = validation_scores(champion, candles, labels, start, end)
            except AiTradeBotError as exc:
                incomparable = f"the champion cannot be scored on these rows: {exc}"
    promote, reasons = gate(challenger_scores, champion_scores, evaluation, placebo, config)
    if incomparable:
        promote, reasons = False, [*reasons[:-1], incomparable]
    info = log_bundle(bundle, candles, config.model_name)
    version = str(info.registered_model_version)
    decision = move_aliases(client, config.model_name, version, promote, champion_version)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    tags = {
        **{f"lineage.{k}": v for k, v in lineage.items()},
        "gate.decision": decision,
        "gate.reasons": " | ".join(reasons)[:4900],
        "gate.at": now,
        "meta.method": bundle.method,
        "meta.confidence_gate": str(bundle.gate),
        "validation.start": start,
        "validation.end": end,
        **{f"validation.{k}": f"{v:.6g}" for k, v in challenger_scores.items()},
    }
    for key, value in tags.items():
        client.set_model_version_tag(config.model_name, version, key, value)
    report = {
        "model_name": config.model_name,
        "version": version,
        "model_uri": f"models:/{config.model_name}/{version}",
        "decision": decision,
        "promoted": promote,
        "reasons": reasons,
        "at": now,
        "validation": {"start": start, "end": end},
        "challenger": challenger_scores,
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
    logger.info("deploy %s v%s: %s (%s)", config.model_name, version, decision, "; ".join(reasons))
    return report


def rollback(name: str, tracking_uri: str | None = None) -> dict[str, str]:
    """Move ``champion`` back to the champion before it (recorded when it was promoted)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    current = current_champion(client, name)
    if current is None:
        raise DeployError(f"model {name!r} has no champion to roll back")
    previous = current.tags.get("previous_champion")
    if not previous:
        raise DeployError(
            f"{name} v{current.version} is the first champion: there is no previous one to "
            "roll back to"
        )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_model_version_tag(name, current.version, "rolled_back_at", now)
    client.set_model_version_tag(name, previous, "restored_at", now)
    logger.info("rollback %s: champion v%s -> v%s", name, current.version, previous)
    return {"model_name": name, "from": str(current.version), "to": str(previous), "at": now}


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str)
