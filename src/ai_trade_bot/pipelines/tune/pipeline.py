"""The ``tune`` pipeline (not part of ``__default__``)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from ai_trade_bot.pipelines.tune.nodes import tune_agent, tune_metrics


def create_pipeline(**kwargs: object) -> Pipeline:
    """Model input -> Optuna study -> best parameters (+ summary, MLflow metrics)."""
    return Pipeline(
        [
            Node(
                func=tune_agent,
                inputs=[
                    "model_input",
                    "model_labels",
                    "params:train.walk_forward",
                    "params:tune",
                    "params:agents",
                ],
                outputs=["tune_best_params", "tune_summary"],
                name="tune_agent",
            ),
            Node(
                func=tune_metrics,
                inputs="tune_summary",
                outputs="tune_metrics",
                name="tune_metrics",
            ),
        ]
    )
