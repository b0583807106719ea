"""The ``features`` pipeline."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from ai_trade_bot.pipelines.features.nodes import compute_features, compute_labels


def create_pipeline(**kwargs: object) -> Pipeline:
    """Clean candles -> features (+ manifest) and labels, kept apart."""
    return Pipeline(
        [
            Node(
                func=compute_features,
                inputs=[
                    "ohlcv_clean",
                    "ohlcv_metadata",
                    "params:features",
                    "params:labels",
                    "params:train.walk_forward",
                ],
                outputs=["features", "feature_manifest"],
                name="compute_features",
            ),
            Node(
                func=compute_labels,
                inputs=["ohlcv_clean", "params:labels"],
                outputs="labels",
                name="compute_labels",
            ),
        ]
    )
