"""Project pipelines.

Only the pipelines a run asks for are imported: ``kedro run --pipeline=ingestion`` must
not pay for importing torch, Lightning, MLflow's model flavours and the agents that only
``train``, ``evaluate`` and ``deploy`` use. Kedro records the requested names before it
first reads the registry (the same filter its ``find_pipelines`` honours).
"""

from __future__ import annotations

import importlib

from kedro.config import OmegaConfigLoader
from kedro.framework.project import pipelines as project_pipelines
from kedro.pipeline import Pipeline

from ai_trade_bot.settings import CONFIG_LOADER_ARGS, PROJECT_ROOT

# every pipeline in the order `__default__` runs them; `tune` is separate
DEFAULT_ORDER = ("ingestion", "features", "train", "evaluate", "deploy", "drift")
WITH_AGENTS = {"train", "evaluate", "deploy"}
ALL = (*DEFAULT_ORDER, "tune", "universe")


def enabled_agents() -> list[str]:
    """``train.agents`` from conf/base (overridden by conf/local)."""
    loader = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), **CONFIG_LOADER_ARGS)
    return list(loader["parameters"]["train"]["agents"])


def _create(name: str, agents: list[str] | None) -> Pipeline:
    module = importlib.import_module(f"ai_trade_bot.pipelines.{name}")
    if name in WITH_AGENTS:
        return module.create_pipeline(agents=agents)
    return module.create_pipeline()


def requested() -> set[str] | None:
    """The pipeline names of the current ``kedro run`` (None: all of them)."""
    names = getattr(project_pipelines, "_requested_pipelines", None)
    if not names or "__default__" in names or not set(names) <= set(ALL):
        return None  # unknown names load everything, so Kedro can suggest the right one
    return set(names)


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines (only the requested ones when a run names them).

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    wanted = requested() or set(ALL)
    agents = enabled_agents() if wanted & WITH_AGENTS else None
    pipelines = {name: _create(name, agents) for name in ALL if name in wanted}
    if wanted >= set(DEFAULT_ORDER):
        pipelines["__default__"] = sum((pipelines[name] for name in DEFAULT_ORDER), Pipeline([]))
    return pipelines
