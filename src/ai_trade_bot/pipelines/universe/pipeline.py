"""The ``universe`` pipeline: ingest many symbols -> features -> pooled and per-symbol fits."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from ai_trade_bot.pipelines.universe.nodes import (
    ingest_universe,
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
                ["universe_candles", "universe_data_quality", "params:features", "params:labels"],
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
                ],
                ["universe_oof_predictions", "universe_models", "universe_train_summary"],
                name="train_universe",
            ),
        ]
    )
