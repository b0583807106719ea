"""The ``deploy`` pipeline: package the bundle, register it, gate the champion."""

from __future__ import annotations

from collections.abc import Iterable

from kedro.pipeline import Node, Pipeline

from ai_trade_bot.pipelines.deploy.nodes import deploy_bundle, package_bundle
from ai_trade_bot.pipelines.train.pipeline import DEFAULT_AGENTS


def create_pipeline(agents: Iterable[str] = DEFAULT_AGENTS, **kwargs: object) -> Pipeline:
    """Bundle -> MLflow model version (challenger) -> gate -> champion or not."""
    agents = list(agents)
    return Pipeline(
        [
            Node(
                func=package_bundle,
                inputs=[
                    "ohlcv_metadata",
                    "feature_manifest",
                    "walk_forward_plan",
                    "meta_agents",
                    "meta_selection",
                    "oof_predictions",
                    "meta_oof_predictions",
                    "labels",
                    "params:features",
                    "params:labels",
                    "params:evaluate",
                    *[f"{name}.model" for name in agents],
                ],
                outputs="deploy_bundle",
                name="package_bundle",
            ),
            Node(
                func=deploy_bundle,
                inputs=[
                    "deploy_bundle",
                    "ohlcv_clean",
                    "labels",
                    "evaluation",
                    "evaluation_report",
                    "train_summary",
                    "params:deploy",
                    "params:project_root",
                ],
                outputs="deploy_report",
                name="deploy_bundle",
            ),
        ]
    )
