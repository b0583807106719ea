"""The ``train`` pipeline: one namespaced pipeline per enabled agent."""

from __future__ import annotations

from collections.abc import Iterable

from kedro.pipeline import Node, Pipeline

from ai_trade_bot.agents import AGENTS
from ai_trade_bot.pipelines.train.nodes import (
    build_model_input,
    collect_oof_predictions,
    fit_meta_agents,
    summarise_training,
    train_agent,
)

DEFAULT_AGENTS = ("trend_lstm", "trend_transformer", "volatility", "pattern", "regime", "gbm")


def agent_pipeline() -> Pipeline:
    """The template reused for every agent through a namespace."""
    return Pipeline(
        [
            Node(
                func=train_agent,
                inputs=[
                    "model_input",
                    "model_labels",
                    "params:train.walk_forward",
                    "params:agent",
                    "tuned_params",
                ],
                outputs=["oof_predictions", "model", "metrics"],
                name="train_agent",
            )
        ]
    )


def create_pipeline(agents: Iterable[str] = DEFAULT_AGENTS, **kwargs: object) -> Pipeline:
    """Model input, then each agent's namespace (``<agent>.model`` ...), then the OOF join."""
    agents = [AGENTS[name].name for name in agents]  # unknown names fail here, by name
    per_agent = [
        Pipeline(
            agent_pipeline(),
            namespace=name,
            inputs={"model_input", "model_labels"},
            parameters={
                "params:train.walk_forward": "params:train.walk_forward",
                "params:agent": f"params:agents.{name}",
            },
        )
        for name in agents
    ]
    return Pipeline(
        [
            Node(
                func=build_model_input,
                inputs=["features", "labels", "ohlcv_clean", "params:train.walk_forward"],
                outputs=["model_input", "model_labels", "walk_forward_plan"],
                name="build_model_input",
            ),
            *per_agent,
            Node(
                func=collect_oof_predictions,
                inputs=[f"{name}.oof_predictions" for name in agents],
                outputs="oof_predictions",
                name="collect_oof_predictions",
            ),
            Node(
                func=fit_meta_agents,
                inputs=["oof_predictions", "model_labels", "params:meta"],
                outputs=["meta_oof_predictions", "meta_agents", "meta_ablation"],
                name="fit_meta_agents",
            ),
            Node(
                func=summarise_training,
                inputs=[f"{name}.metrics" for name in agents],
                outputs="train_summary",
                name="summarise_training",
            ),
        ]
    )
