"""The ``universe`` pipeline: ingest many symbols -> features -> pooled and per-symbol fits
-> the held-out span traded as one book -> the universe bundle, registered and gated."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from ai_trade_bot.pipelines.universe.nodes import (
    deploy_universe_bundle,
    evaluate_universe_test_span,
    ingest_universe,
    package_universe_bundle,
    predict_universe_test_span,
    train_universe_models,
    universe_features,
)


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                ingest_universe,
                ["params:ingestion", "params:universe"],
                ["universe_candles", "universe_rejected", "universe_data_quality"],
                name="ingest_universe",
            ),
            Node(
                universe_features,
                [
                    "universe_candles",
                    "universe_data_quality",
                    "params:features",
                    "params:labels",
                    "params:train",
                ],
                ["universe_model_input", "universe_labels", "universe_feature_manifest"],
                name="universe_features",
            ),
            Node(
                train_universe_models,
                [
                    "universe_model_input",
                    "universe_labels",
                    "params:train",
                    "params:agents",
                    "params:features",
                    "params:meta",
                ],
                ["universe_oof_predictions", "universe_models", "universe_train_summary"],
                name="train_universe",
            ),
            Node(
                predict_universe_test_span,
                ["universe_model_input", "universe_models", "params:train"],
                "universe_test_outputs",
                name="predict_universe_test_span",
            ),
            Node(
                evaluate_universe_test_span,
                [
                    "universe_test_outputs",
                    "universe_oof_predictions",
                    "universe_candles",
                    "universe_labels",
                    "universe_train_summary",
                    "universe_data_quality",
                    "params:evaluate",
                    "params:risk",
                    "params:portfolio",
                ],
                ["universe_evaluation", "universe_equity_curves", "universe_report"],
                name="evaluate_universe",
            ),
            Node(
                package_universe_bundle,
                [
                    "universe_models",
                    "universe_evaluation",
                    "universe_data_quality",
                    "universe_candles",
                    "params:features",
                    "params:labels",
                    "params:evaluate",
                    "params:portfolio",
                    "params:risk",
                ],
                "universe_bundle",
                name="package_universe_bundle",
            ),
            Node(
                deploy_universe_bundle,
                [
                    "universe_bundle",
                    "universe_candles",
                    "universe_evaluation",
                    "universe_report",
                    "universe_train_summary",
                    "params:deploy",
                    "params:project_root",
                ],
                "universe_deploy_report",
                name="deploy_universe",
            ),
        ]
    )
