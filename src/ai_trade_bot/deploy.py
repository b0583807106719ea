"""Register a bundle in the MLflow model registry and move ``champion`` only through a gate.

Every new version gets the ``challenger`` alias. ``champion`` moves to it when:

- the honesty checks pass: the deflated Sharpe was reported, PBO is at most
  ``max_pbo``, and a placebo (the same bars in a shuffled order, so no order is left to
  predict) shows no edge (PSR below ``max_placebo_psr``, accuracy interval covering
  chance); and
- there is no champion yet, or the challenger beats it on the same validation rows (the
  challenger's held-out span, neither trained on) by ``min_sharpe_gain`` in net Sharpe and
  ``min_log_loss_gain`` in log-loss.

Every decision, promoted or not, and why, goes to the deploy report and to the version's
tags. ``rollback`` moves ``champion`` back to the champion before it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ai_trade_bot.backtest.statistics import deflated_sharpe
from ai_trade_bot.bundle import Bundle
from ai_trade_bot.errors import AiTradeBotError
from ai_trade_bot.evaluation import classification_report, model_strategy
from ai_trade_bot.features.build import labels_for
from ai_trade_bot.meta import ABS_PER_SIGMA
from ai_trade_bot.scoring import class_prior

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


@dataclass(frozen=True)
class DeployConfig:
    """``params:deploy``."""

    model_name: str = "ai_trade_bot"
    min_sharpe_gain: float = 0.0
    min_log_loss_gain: float = 0.0
    max_pbo: float = 0.5
    max_placebo_psr: float = 0.95
    placebo_seed: int = 0


# -- MLflow pyfunc ---------------------------------------------------------------------
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


def load_bundle(uri: str) -> Bundle:
    """A bundle from a local directory or an MLflow model URI (``models:/name@alias``).

    The registered model's ``bundle`` artifact is downloaded and read with
    :meth:`Bundle.load`, not through ``mlflow.pyfunc.load_model``: that puts the copy of
    this package logged with the model first on ``sys.path``, so every module imported
    afterwards (and every process spawned from it) would run the logged copy, whose
    project root holds neither ``conf/local`` nor the reports.
    """
    if Path(uri).exists():
        return Bundle.load(uri)
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    return Bundle.load(local / "artifacts" / "bundle")


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


# -- lineage -----------------------------------------------------------------------------
def git_commit(root: Path) -> str:
    """The checked-out commit (with ``-dirty`` when the tree has changes), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def dvc_hash(root: Path, output: str = "data/02_intermediate/ohlcv_clean.parquet") -> str:
    """The md5 DVC recorded for ``output`` in dvc.lock, or ``untracked``."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return "untracked"
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    for stage in stages.values():
        for out in stage.get("outs", []):
            if out.get("path") == output:
                return str(out.get("md5", "untracked"))
    return "untracked"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- the gate ------------------------------------------------------------------------------
def validation_scores(
    bundle: Bundle, candles: pd.DataFrame, labels: pd.Series, start: str, end: str
) -> dict[str, float]:
    """Net Sharpe, log-loss and trades of ``bundle`` on candles ``start..end`` (features
    from the whole history before), with its own decision settings and the same costs."""
    from ai_trade_bot.evaluation import make_span

    history = candles.loc[:end]
    outputs = bundle.predict(history, start=pd.Timestamp(start))
    meta = outputs.filter(like="meta.").rename(columns=lambda c: c[len("meta.") :])
    span = make_span(history, pd.Timestamp(start), pd.Timestamp(end), bundle.evaluate)
    strategy = model_strategy(
        "bundle",
        meta,
        span,
        labels,
        bundle.evaluate,
        gate=bundle.gate,
        pred_vol=meta["magnitude"] / ABS_PER_SIGMA,
    )
    known = meta.index[labels.reindex(meta.index).notna().to_numpy()]
    prior = class_prior(labels.loc[: pd.Timestamp(start)].iloc[:-1])
    clf = classification_report(meta.loc[known], labels, prior)
    return {
        "sharpe": float(strategy.metrics["sharpe"]),
        "log_loss": float(clf["log_loss"]),
        "accuracy": float(clf["accuracy"]),
        "accuracy_ci_low": float(clf["accuracy_ci"][0]),
        "chance_accuracy": float(clf["chance_accuracy"]),
        "n_trades": float(strategy.metrics["n_trades"]),
        "bars": float(len(span.bars)),
        "psr": float(deflated_sharpe(strategy.returns.to_numpy(), 1)["psr"]),
    }


def placebo_candles(candles: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The same bars in a shuffled order: each bar after the first keeps its open, high,
    low and close relative to the previous close, and its volume, and these whole bars are
    permuted. Shapes, volumes and the return distribution are kept; any order a model could
    predict is gone.

    Whole bars move, not only close-to-close returns: shuffling returns alone would leave
    each bar's body (open to close) in place, and a body that predicts the next one (any
    momentum within bars) would survive into the placebo as a false "edge".
    """
    rng = np.random.default_rng(seed)
    prices = candles[["open", "high", "low", "close"]].to_numpy(dtype=np.float64)
    relative = prices[1:] / prices[:-1, 3:4]  # each bar against the close before it
    order = rng.permutation(len(relative))
    relative = relative[order]
    close = prices[0, 3] * np.cumprod(relative[:, 3])
    out = candles.copy()
    previous = np.concatenate([[prices[0, 3]], close[:-1]])
    for k, column in enumerate(("open", "high", "low", "close")):
        out.iloc[1:, out.columns.get_loc(column)] = previous * relative[:, k]
    if "volume" in out:
        volume = candles["volume"].to_numpy()
        out.iloc[1:, out.columns.get_loc("volume")] = volume[1:][order]
    return out


def placebo_scores(
    bundle: Bundle, candles: pd.DataFrame, start: str, end: str, seed: int
) -> dict[str, float]:
    """:func:`validation_scores` of ``bundle`` on the placebo of ``candles``."""
    placebo = placebo_candles(candles.loc[:end], seed)
    labels = labels_for(placebo, bundle.labels)["direction"]
    return validation_scores(bundle, placebo, labels, start, end)


def gate(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    evaluation: dict[str, Any],
    placebo: dict[str, float],
    config: DeployConfig,
) -> tuple[bool, list[str]]:
    """Whether the challenger becomes champion, and every reason."""
    reasons: list[str] = []
    ok = True
    stats = evaluation.get("statistics", {})
    dsr, pbo = stats.get("dsr"), stats.get("pbo")
    if dsr is None or not np.isfinite(dsr):
        ok = False
        reasons.append("the deflated Sharpe was not reported")
    else:
        reasons.append(f"deflated Sharpe reported: {dsr:.3f}")
    if pbo is None or not np.isfinite(pbo):
        ok = False
        why = stats.get("pbo_undefined", "it was not reported")
        reasons.append(f"PBO is undefined ({why}), so the PBO check cannot pass")
    elif pbo > config.max_pbo:
        ok = False
        reasons.append(f"PBO {pbo:.3f} is not at most {config.max_pbo}")
    else:
        reasons.append(f"PBO {pbo:.3f} <= {config.max_pbo}")
    placebo_edge = placebo["psr"] >= config.max_placebo_psr or (
        placebo["accuracy_ci_low"] > placebo["chance_accuracy"]
    )
    if placebo_edge:
        ok = False
        reasons.append(
            f"the placebo shows an edge (PSR {placebo['psr']:.3f}, accuracy CI low "
            f"{placebo['accuracy_ci_low']:.3f} vs chance {placebo['chance_accuracy']:.3f}): "
            "something leaks"
        )
    else:
        reasons.append(f"no placebo edge (PSR {placebo['psr']:.3f})")
    if champion is None:
        reasons.append("no champion yet")
        return ok, reasons
    sharpe_gain = challenger["sharpe"] - champion["sharpe"]
    loss_gain = champion["log_loss"] - challenger["log_loss"]
    if sharpe_gain > config.min_sharpe_gain and loss_gain > config.min_log_loss_gain:
        reasons.append(
            f"beats the champion: Sharpe {challenger['sharpe']:.3f} vs {champion['sharpe']:.3f}, "
            f"log-loss {challenger['log_loss']:.4f} vs {champion['log_loss']:.4f}"
        )
        return ok, reasons
    reasons.append(
        f"does not beat the champion by the margins (Sharpe {challenger['sharpe']:.3f} vs "
        f"{champion['sharpe']:.3f}, needs +{config.min_sharpe_gain}; log-loss "
        f"{challenger['log_loss']:.4f} vs {champion['log_loss']:.4f}, needs "
        f"-{config.min_log_loss_gain})"
    )
    return False, reasons


def current_champion(client: Any, name: str) -> Any | None:
    """The champion's model version, or None ("no champion yet" is a normal state)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


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
    client.set_registered_model_alias(config.model_name, CHALLENGER, version)
    if promote:
        client.set_registered_model_alias(config.model_name, CHAMPION, version)
        if champion_version is not None:
            client.set_model_version_tag(
                config.model_name, version, "previous_champion", str(champion_version.version)
            )
    decision = (
        "promoted"
        if promote and champion_version is not None
        else "first_champion"
        if promote
        else "kept_champion"
        if champion_version is not None
        else "no_champion"
    )
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
