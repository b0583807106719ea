"""Project pipelines."""

from __future__ import annotations

from kedro.config import OmegaConfigLoader
from kedro.pipeline import Pipeline

from ai_trade_bot.pipelines import deploy, drift, evaluate, features, ingestion, train, tune
from ai_trade_bot.settings import CONFIG_LOADER_ARGS, PROJECT_ROOT


def enabled_agents() -> list[str]:
    """``train.agents`` from conf/base (overridden by conf/local)."""
    loader = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), **CONFIG_LOADER_ARGS)
    return list(loader["parameters"]["train"]["agents"])


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    pipelines = {
        "ingestion": ingestion.create_pipeline(),
        "features": features.create_pipeline(),
        "train": train.create_pipeline(agents=enabled_agents()),
        "evaluate": evaluate.create_pipeline(agents=enabled_agents()),
        "deploy": deploy.create_pipeline(agents=enabled_agents()),
        "drift": drift.create_pipeline(),
    }
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    pipelines["tune"] = tune.create_pipeline()  # not in __default__
    return pipelines
