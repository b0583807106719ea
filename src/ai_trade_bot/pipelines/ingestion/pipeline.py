"""The ``ingestion`` pipeline."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from ai_trade_bot.pipelines.ingestion.nodes import load_ohlcv, validate_candles


def create_pipeline(**kwargs: object) -> Pipeline:
    """Load -> validate -> (clean, rejected, quality summary)."""
    return Pipeline(
        [
            Node(
                func=load_ohlcv,
                inputs="params:ingestion",
                outputs=["ohlcv_raw", "ohlcv_metadata"],
                name="load_ohlcv",
            ),
            Node(
                func=validate_candles,
                inputs=["ohlcv_raw", "ohlcv_metadata", "params:ingestion.validation"],
                outputs=[
                    "ohlcv_clean",
                    "ohlcv_rejected",
                    "data_quality_summary",
                    "data_quality_metrics",
                ],
                name="validate_candles",
            ),
        ]
    )
