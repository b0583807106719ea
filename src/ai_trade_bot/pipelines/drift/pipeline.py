"""The ``drift`` pipeline: Evidently drift, performance rules, the retrain decision."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from ai_trade_bot.pipelines.drift.nodes import (
    check_performance,
    decide_retrain,
    detect_drift,
    drift_metrics,
)


def create_pipeline(**kwargs: object) -> Pipeline:
    """Drift report and summary, performance figures, ``retrain_required``."""
    return Pipeline(
        [
            Node(
                func=detect_drift,
                inputs=["deploy_bundle", "features", "ohlcv_clean", "params:drift"],
                outputs=["drift_report", "drift_summary"],
                name="detect_drift",
            ),
            Node(
                func=check_performance,
                inputs=["deploy_bundle", "evaluation", "labels", "params:drift"],
                outputs="drift_performance",
                name="check_performance",
            ),
            Node(
                func=decide_retrain,
                inputs=["drift_summary", "drift_performance", "params:drift"],
                outputs="retrain_required",
                name="decide_retrain",
            ),
            Node(
                func=drift_metrics,
                inputs="retrain_required",
                outputs="drift_mlflow_metrics",
                name="drift_metrics",
            ),
        ]
    )
