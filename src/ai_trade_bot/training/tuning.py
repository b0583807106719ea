"""Optuna search for one agent on the walk-forward folds before the held-out test span."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.storages import BaseStorage

from ai_trade_bot.agents import AGENTS, make_agent
from ai_trade_bot.agents.torch_agent import TorchAgent
from ai_trade_bot.config import parse_config
from ai_trade_bot.errors import ConfigError
from ai_trade_bot.modeling.scoring import class_prior
from ai_trade_bot.settings import PROJECT_ROOT
from ai_trade_bot.training.fanout import (
    ExecutorConfig,
    available_workers,
    one_thread,
    run_tasks,
    task_seed,
)
from ai_trade_bot.training.folds import WalkForwardConfig, walk_forward_folds
from ai_trade_bot.training.walk_forward import fit_on_rows, predict_rows, score_output

logger = logging.getLogger(__name__)

JOURNAL = "data/06_models/optuna_journal.log"

# What each agent kind minimises out of fold.
OBJECTIVE = {"direction": "log_loss", "volatility": "qlike", "regime": None}


@dataclass(frozen=True)
class SearchDimension:
    """One hyperparameter's range in ``tune.search_space.<agent>.<name>``: ``float`` or
    ``int`` between ``low`` and ``high`` (on a log scale with ``log``), or one of
    ``choices`` (``categorical``)."""

    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    def __post_init__(self) -> None:
        if self.type not in ("float", "int", "categorical"):
            raise ValueError(f"type must be float, int or categorical, got {self.type!r}")
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical dimension needs a non-empty list of choices")
            if self.low is not None or self.high is not None or self.log:
                raise ValueError("a categorical dimension takes choices, not low/high/log")
            return
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"{self.type} needs low < high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, got {self.low}")
        if self.choices is not None:
            raise ValueError(f"a {self.type} dimension takes low/high, not choices")

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if self.type == "float":
            return trial.suggest_float(name, self.low, self.high, log=self.log)
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_categorical(name, list(self.choices))


def parse_search_space(
    block: dict[str, dict[str, dict[str, Any]]] | None,
) -> dict[str, dict[str, SearchDimension]]:
    """``tune.search_space`` typed: every dimension of every agent, failing by its path
    (``tune.search_space.trend_lstm.lr``) on a misspelt key, a wrong type or range, or a
    hyperparameter the agent does not take."""
    out: dict[str, dict[str, SearchDimension]] = {}
    for agent, space in (block or {}).items():
        dims = {
            name: parse_config(SearchDimension, spec, name=f"tune.search_space.{agent}.{name}")
            for name, spec in (space or {}).items()
        }
        probe = {
            name: dim.choices[0] if dim.type == "categorical" else dim.low
            for name, dim in dims.items()
        }
        make_agent(agent, **probe)
        out[agent] = dims
    return out


@dataclass(frozen=True)
class TuneConfig:
    """``params:tune``."""

    agent: str = "trend_lstm"
    n_trials: int = 20
    timeout_seconds: float | None = None
    n_folds: int = 2  # the last n walk-forward folds before the test span are scored
    storage: str | None = None  # default: SQLite; OPTUNA_STORAGE (env) overrides, e.g. PostgreSQL
    study_name: str | None = None
    seed: int = 42
    pruner_warmup_epochs: int = 2
    search_space: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # trials in parallel: how many workers and where (ai_trade_bot.training.fanout); one
    # worker runs the study in this process, as before
    executor: dict[str, Any] = field(default_factory=lambda: {"n_workers": 1})
    # the study's journal file when several workers share it and the storage is SQLite
    # (no database server); None: data/06_models/optuna_journal.log beside the project
    journal: str | None = None

    def __post_init__(self) -> None:
        AGENTS[self.agent]
        object.__setattr__(
            self, "executor", parse_config(ExecutorConfig, self.executor, name="tune.executor")
        )
        if self.n_trials < 1:
            raise ValueError(f"n_trials must be >= 1, got {self.n_trials}")
        if self.agent not in self.search_space:
            raise ValueError(f"no search_space for agent {self.agent!r} in parameters_tune.yml")
        object.__setattr__(self, "search_space", parse_search_space(self.search_space))


def suggest(trial: optuna.Trial, space: dict[str, SearchDimension]) -> dict[str, Any]:
    """Draw one value of every dimension of a typed search space."""
    return {name: dim.suggest(trial, name) for name, dim in space.items()}


def storage_url(config: TuneConfig) -> str | None:
    """OPTUNA_STORAGE from the environment (credentials stay out of config) or the config."""
    return os.environ.get("OPTUNA_STORAGE") or config.storage


def _pruning_callback(trial: optuna.Trial) -> Any:
    from optuna_integration import PyTorchLightningPruningCallback

    return PyTorchLightningPruningCallback(trial, monitor="val/loss")


def objective_for(
    name: str,
    base_params: dict[str, Any],
    space: dict[str, Any],
    X: pd.DataFrame,
    y: pd.DataFrame,
    wf: WalkForwardConfig,
    n_folds: int,
):
    """An Optuna objective: mean out-of-fold loss on the last ``n_folds`` folds.

    Torch agents are pruned per epoch through Lightning on the first scored fold, and
    every agent is pruned between folds on the running mean.
    """
    metric = OBJECTIVE[AGENTS[name].output_kind]
    if metric is None:
        raise ConfigError(f"agent {name!r} has no scalar objective to tune")
    folds = walk_forward_folds(len(X), wf)[-n_folds:]

    def objective(trial: optuna.Trial) -> float:
        params = base_params | suggest(trial, space)
        losses = []
        for k, fold in enumerate(folds):
            fold_params = dict(params)
            if k == 0 and issubclass(AGENTS[name], TorchAgent):
                fold_params |= {
                    "extra_callbacks": [_pruning_callback(trial)],
                    "progress_bar": False,
                }
            agent = fit_on_rows(make_agent(name, **fold_params), X, y, fold.train, fold.val)
            out = predict_rows(agent, X, fold.test)
            scores = score_output(agent, out, y, class_prior(y["direction"].iloc[fold.train]))
            losses.append(scores[metric])
            trial.report(float(np.mean(losses)), step=10_000 + k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(losses))

    return objective, metric


def _study(config: TuneConfig, storage: Any, seed: int) -> optuna.Study:
    return optuna.create_study(
        study_name=config.study_name or f"ai_trade_bot-{config.agent}",
        storage=storage,
        load_if_exists=True,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_warmup_steps=config.pruner_warmup_epochs),
    )


def shared_storage(config: TuneConfig) -> str | BaseStorage:
    """The storage several trial workers share: a database server's URL as it is (each
    worker connects); otherwise (SQLite, or none) Optuna's journal file, which processes
    append to under a file lock: SQLite's one writer fails them with 'database is locked'."""
    url = storage_url(config)
    if url and not url.startswith("sqlite"):
        return url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(config.journal) if config.journal else PROJECT_ROOT / JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


@dataclass(frozen=True)
class TrialBatch:
    """One worker's share of the trials, with its own sampler seed."""

    number: int
    n_trials: int
    seed: int


def _optimize_batch(*args: Any) -> int:
    """:func:`_optimize_batch_here` on one thread (a worker's trials)."""
    with one_thread():
        return _optimize_batch_here(*args)


def _optimize_batch_here(
    batch: TrialBatch,
    config: TuneConfig,
    base_params: dict[str, Any],
    X: pd.DataFrame,
    y: pd.DataFrame,
    wf: WalkForwardConfig,
    storage: Any,
) -> int:
    """Run one worker's trials on the shared study (in a worker process)."""
    if config.executor.address is not None:  # on Dask: the study lives on the scheduler
        from optuna_integration import DaskStorage

        name = f"ai_trade_bot-optuna-{config.study_name or config.agent}"
        storage = DaskStorage(storage=storage, name=name)
    objective, _ = objective_for(
        config.agent, base_params, config.search_space[config.agent], X, y, wf, config.n_folds
    )
    study = _study(config, storage, batch.seed)

    def tagged(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker_pid", os.getpid())  # which process ran it (a check)
        return objective(trial)

    study.optimize(
        tagged, n_trials=batch.n_trials, timeout=config.timeout_seconds, gc_after_trial=True
    )
    return os.getpid()


def run_study(
    config: TuneConfig,
    base_params: dict[str, Any],
    X: pd.DataFrame,
    y: pd.DataFrame,
    wf: WalkForwardConfig,
) -> optuna.Study:
    """Create or resume the study and run ``n_trials`` more trials.

    With ``tune.executor`` naming more than one worker (or a Dask scheduler), the trials
    are split into one batch per worker, each with a seed derived from ``tune.seed``, and
    run through :func:`ai_trade_bot.training.fanout.run_tasks` on one shared study: a
    database server's, or Optuna's journal file (on Dask, Optuna's ``DaskStorage`` around
    it: the scheduler holds the study and the workers ask it). Which trial a worker draws
    then depends on what the others finished first: parallel studies are not repeatable
    trial by trial.
    """
    objective, metric = objective_for(
        config.agent, base_params, config.search_space[config.agent], X, y, wf, config.n_folds
    )
    executor = config.executor
    workers = available_workers() if executor.n_workers == "auto" else int(executor.n_workers)
    workers = max(1, min(workers, config.n_trials))
    if executor.address is None and workers == 1:
        study = _study(config, storage_url(config), config.seed)
        study.set_user_attr("metric", metric)
        study.optimize(
            objective, n_trials=config.n_trials, timeout=config.timeout_seconds, gc_after_trial=True
        )
        return study
    storage = shared_storage(config)
    study = _study(config, storage, config.seed)  # created once, before the workers start
    study.set_user_attr("metric", metric)
    batches = [
        TrialBatch(
            k,
            config.n_trials // workers + (k < config.n_trials % workers),
            task_seed(config.seed, "tune", config.agent, len(study.trials), k),
        )
        for k in range(workers)
    ]
    pids, ran = run_tasks(
        _optimize_batch,
        batches,
        dataclasses.replace(config.executor, n_workers=workers),
        shared=(config, base_params, X, y, wf, storage),
    )
    logger.info(
        "tune: %d trials in %d batches on %s (%d worker processes)",
        config.n_trials,
        len(batches),
        ran["backend"],
        len(set(pids)),
    )
    return optuna.load_study(study_name=study.study_name, storage=storage)
