"""MLflow helpers: nested runs per agent, fold metrics as steps, agents as pyfunc models."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature

from ai_trade_bot.agents import Agent

logger = logging.getLogger(__name__)

_REQUIREMENTS = (
    "torch",
    "pytorch-lightning",
    "lightgbm",
    "hmmlearn",
    "arch",
    "pandas",
    "numpy",
    "scikit-learn",
    "scipy",
    "numba",
)


class AgentPyfunc(mlflow.pyfunc.PythonModel):
    """Serve a saved agent through ``mlflow.pyfunc`` (input: the model-input frame)."""

    def load_context(self, context: Any) -> None:
        self.agent = Agent.load(context.artifacts["agent"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None):
        return self.agent.predict(model_input)


@contextlib.contextmanager
def agent_run(name: str, params: dict[str, Any]) -> Iterator[bool]:
    """A nested MLflow run for one agent when a parent run is active (kedro-mlflow's).

    Yields whether tracking is on, so callers can skip logging otherwise.
    """
    if mlflow.active_run() is None:
        yield False
        return
    with mlflow.start_run(run_name=name, nested=True):
        mlflow.set_tag("agent", name)
        mlflow.log_params({f"agent.{k}": v for k, v in params.items()})
        yield True


def active_run_id() -> str | None:
    """The id of the active MLflow run (kedro-mlflow's), if any."""
    run = mlflow.active_run()
    return run.info.run_id if run is not None else None


@contextlib.contextmanager
def ensure_run(name: str) -> Iterator[Any]:
    """The active MLflow run, or a new one named ``name`` for the block (outside Kedro)."""
    run = mlflow.active_run()
    if run is not None:
        yield run
        return
    with mlflow.start_run(run_name=name) as started:
        yield started


def log_fold(fold: int, scores: dict[str, float]) -> None:
    """Fold metrics as steps of the active run (``fold/<metric>``)."""
    mlflow.log_metrics({f"fold/{k}": float(v) for k, v in scores.items()}, step=fold)


def log_agent_model(agent: Agent, sample: pd.DataFrame) -> str:
    """Log ``agent`` as an MLflow pyfunc model with a signature; returns the model URI."""
    package = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp:
        agent.save(Path(tmp) / "agent")
        signature = infer_signature(sample, agent.predict(sample))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=AgentPyfunc(),
            artifacts={"agent": str(Path(tmp) / "agent")},
            code_paths=[str(package)],
            signature=signature,
            pip_requirements=[f"{p}=={version(p)}" for p in _REQUIREMENTS],
        )
    return info.model_uri
