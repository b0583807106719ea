"""The ``evaluate`` pipeline."""

from __future__ import annotations

from collections.abc import Iterable

from kedro.pipeline import Node, Pipeline

from ai_trade_bot.evaluation.report import render_report
from ai_trade_bot.pipelines.evaluate.nodes import (
    backtest_metrics,
    evaluate_test_span,
    flatten_metrics,
    predict_test_span,
    select_meta_config,
)
from ai_trade_bot.pipelines.train.pipeline import DEFAULT_AGENTS


def create_pipeline(agents: Iterable[str] = DEFAULT_AGENTS, **kwargs: object) -> Pipeline:
    """Select on validation rows, predict and backtest the test span once, report."""
    agents = list(agents)
    return Pipeline(
        [
            Node(
                func=predict_test_span,
                inputs=[
                    "model_input",
                    "features",
                    "ohlcv_clean",
                    "params:train.walk_forward",
                    *[f"{name}.model" for name in agents],
                ],
                outputs="test_agent_outputs",
                name="predict_test_span",
            ),
            Node(
                func=select_meta_config,
                inputs=["meta_oof_predictions", "labels", "ohlcv_clean", "params:evaluate"],
                outputs=["meta_selection", "selection_returns"],
                name="select_meta_config",
            ),
            Node(
                func=evaluate_test_span,
                inputs=[
                    "test_agent_outputs",
                    "meta_agents",
                    "meta_selection",
                    "selection_returns",
                    "labels",
                    "ohlcv_clean",
                    "tune_summaries",
                    "params:evaluate",
                ],
                outputs=["evaluation", "equity_curves"],
                name="evaluate_test_span",
            ),
            Node(
                func=backtest_metrics,
                inputs="evaluation",
                outputs="backtest_metrics",
                name="backtest_metrics",
            ),
            Node(
                func=flatten_metrics,
                inputs="backtest_metrics",
                outputs="evaluation_mlflow_metrics",
                name="flatten_metrics",
            ),
            Node(
                func=render_report,
                inputs=["evaluation", "equity_curves", "meta_ablation", "train_summary"],
                outputs="evaluation_report",
                name="render_report",
            ),
        ]
    )
