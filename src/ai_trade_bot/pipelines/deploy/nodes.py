"""Nodes of the deploy pipeline (glue over :mod:`ai_trade_bot.registry`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ai_trade_bot.agents import Agent
from ai_trade_bot.config import parse_config
from ai_trade_bot.evaluation.settings import parse_evaluate_config
from ai_trade_bot.features.build import LabelConfig, feature_config
from ai_trade_bot.modeling.scoring import oof_reference
from ai_trade_bot.registry import tracking
from ai_trade_bot.registry.bundle import Bundle
from ai_trade_bot.registry.deploy import register_and_gate
from ai_trade_bot.registry.gate import DeployConfig
from ai_trade_bot.registry.lineage import dvc_hash, git_commit, sha256_text
from ai_trade_bot.strategy.config import strategy_of


def package_bundle(
    ohlcv_metadata: dict[str, str],
    feature_manifest: dict[str, Any],
    walk_forward_plan: dict[str, Any],
    meta_agents: dict[str, Any],
    meta_selection: dict[str, Any],
    oof_predictions: pd.DataFrame,
    meta_oof_predictions: pd.DataFrame,
    label_frame: pd.DataFrame,
    features: dict[str, Any],
    labels: dict[str, Any],
    evaluate: dict[str, Any],
    *models: Agent,
) -> Bundle:
    """One bundle: the deployment-fit agents, the meta method and gate chosen by
    ``evaluate``, every config (parsed, so a misspelt key fails here by name), the feature
    columns, the warm-up and the training window.

    Returns:
        ``deploy_bundle``.
    """
    timeframe = ohlcv_metadata["timeframe"]
    resolved = feature_manifest["resolved"]
    config = feature_config(
        {**features, "multi_timeframe": resolved["multi_timeframe"]}
        | {"vwap_anchor": resolved["vwap_anchor"]}
    )
    first_fold = walk_forward_plan["folds"][0]
    method = meta_selection["method"]
    meta_oof = meta_oof_predictions[
        [c for c in meta_oof_predictions.columns if str(c).startswith(f"{method}.")]
    ]
    meta_oof = meta_oof.rename(columns=lambda c: "meta." + str(c)[len(method) + 1 :])
    # the out-of-fold figures the live ledger is read against (ai_trade_bot.live.ledger)
    reference = oof_reference(oof_predictions, label_frame["direction"])
    reference |= oof_reference(meta_oof, label_frame["direction"])
    return Bundle(
        symbol=ohlcv_metadata["symbol"],
        timeframe=timeframe,
        features=config,
        labels=parse_config(LabelConfig, labels, name="labels"),
        strategy=strategy_of(parse_evaluate_config(evaluate)),
        agents={m.name: m for m in models},
        meta=meta_agents[meta_selection["method"]],
        selection=meta_selection,
        feature_columns=list(feature_manifest["columns"]),
        training={
            "start": first_fold["train_start"],
            "end": walk_forward_plan["test_span"]["start"],
            "rows_before_test": walk_forward_plan["rows"] - walk_forward_plan["test_span"]["rows"],
            "packaged_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
            "oof": reference,
        },
    )


def deploy_bundle(
    deploy_bundle: Bundle,
    ohlcv_clean: pd.DataFrame,
    labels: pd.DataFrame,
    evaluation: dict[str, Any],
    evaluation_report: str,
    train_summary: dict[str, Any],
    deploy: dict[str, Any],
    project_root: str,
) -> dict[str, Any]:
    """Register the bundle as the ``challenger`` and move ``champion`` only through the
    gate (see :mod:`ai_trade_bot.registry.deploy`); lineage tags name the git commit, the DVC hash
    of ``ohlcv_clean``, the training and evaluation runs and the evaluation report.

    Returns:
        ``deploy_report`` (every decision and why).
    """
    config = parse_config(DeployConfig, deploy, name="deploy")
    root = Path(project_root)
    training_runs = {s.get("mlflow_run_id") for s in train_summary.values()} - {None}
    lineage = {
        "git_commit": git_commit(root),
        "dvc_ohlcv_clean_md5": dvc_hash(root),
        "training_run_id": ",".join(sorted(training_runs)) or "untracked",
        "evaluation_run_id": str(evaluation.get("mlflow_run_id") or "untracked"),
        "evaluation_report_sha256": sha256_text(evaluation_report),
    }
    with tracking.ensure_run("deploy"):
        return register_and_gate(
            deploy_bundle, ohlcv_clean, labels["direction"], evaluation, config, lineage
        )
