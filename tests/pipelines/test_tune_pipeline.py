"""The tune pipeline: an Optuna study in SQLite, Lightning pruning, resumable."""

from __future__ import annotations

import os

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from ai_trade_bot.errors import ConfigError
from ai_trade_bot.pipelines.train.nodes import build_model_input
from ai_trade_bot.pipelines.tune import create_pipeline
from ai_trade_bot.pipelines.tune.nodes import tune_agent
from tests.pipelines.test_train_pipeline import AGENT_PARAMS, WALK_FORWARD


@pytest.fixture(scope="module")
def xy(inputs_module):
    X, y, _ = build_model_input(
        inputs_module["features"],
        inputs_module["labels"],
        inputs_module["ohlcv_clean"],
        WALK_FORWARD,
    )
    return X, y


@pytest.fixture(scope="module")
def inputs_module():
    from ai_trade_bot.features.build import LabelConfig, build_features, labels_for
    from tests.agents.conftest import TINY_FEATURES
    from tests.conftest import make_ohlcv

    ohlcv = make_ohlcv(700, seed=5)
    return {
        "features": build_features(ohlcv, timeframe="1h", config=TINY_FEATURES),
        "labels": labels_for(ohlcv, LabelConfig(horizon=3)),
        "ohlcv_clean": ohlcv,
    }


def _tune_block(agent: str, storage: str, n_trials: int) -> dict:
    space = {
        "trend_lstm": {
            "hidden": {"type": "categorical", "choices": [4, 8]},
            "lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
        },
        "gbm": {
            "num_leaves": {"type": "int", "low": 3, "high": 15},
            "learning_rate": {"type": "float", "low": 0.01, "high": 0.2, "log": True},
        },
    }
    return {
        "agent": agent,
        "n_trials": n_trials,
        "n_folds": 1,
        "storage": storage,
        "pruner_warmup_epochs": 0,
        "search_space": space,
    }


def test_tune_pipeline_runs_a_study_that_later_workers_resume(run, xy, tmp_path) -> None:
    X, y = xy
    storage = f"sqlite:///{tmp_path}/optuna.db"
    agents = {name: {"params": p} for name, p in AGENT_PARAMS.items()}
    out = run(
        create_pipeline(),
        {
            "model_input": X,
            "model_labels": y,
            "params:train.walk_forward": WALK_FORWARD,
            "params:tune": _tune_block("trend_lstm", storage, 3),
            "params:agents": agents,
        },
    )
    best = out["tune_best_params"]
    assert best["n_trials"] == 3
    assert set(best["best_params"]) == {"hidden", "lr"}
    assert out["tune_metrics"]["tune.n_trials"] == {"value": 3.0, "step": 0}
    # a second worker on the same storage adds to the same study
    _, again = tune_agent(X, y, WALK_FORWARD, _tune_block("trend_lstm", storage, 2), agents)
    assert again["n_trials"] == 5
    study = optuna.load_study(study_name="ai_trade_bot-trend_lstm", storage=storage)
    assert len(study.trials) == 5 and study.user_attrs["metric"] == "log_loss"
    assert all(t.intermediate_values for t in study.trials)  # reported per epoch / fold


def test_tune_gbm_and_bad_config(xy, tmp_path) -> None:
    X, y = xy
    agents = {"gbm": {"params": AGENT_PARAMS["gbm"]}}
    best, summary = tune_agent(
        X, y, WALK_FORWARD, _tune_block("gbm", f"sqlite:///{tmp_path}/o.db", 2), agents
    )
    assert summary["n_trials"] == 2 and 3 <= best["best_params"]["num_leaves"] <= 15
    with pytest.raises(ConfigError, match="unknown agent 'lstm'"):
        tune_agent(X, y, WALK_FORWARD, {"agent": "lstm", "search_space": {}}, agents)
    with pytest.raises(ConfigError, match="no search_space for agent 'regime'"):
        tune_agent(X, y, WALK_FORWARD, {"agent": "regime", "search_space": {}}, agents)


def _parallel_block(tmp_path, executor: dict) -> dict:
    return _tune_block("gbm", f"sqlite:///{tmp_path}/unused.db", 4) | {
        "executor": executor,
        "journal": str(tmp_path / "journal.log"),
    }


def test_tune_trials_fanned_out_on_loky_share_one_journal(xy, tmp_path) -> None:
    X, y = xy
    agents = {"gbm": {"params": AGENT_PARAMS["gbm"]}}
    block = _parallel_block(tmp_path, {"n_workers": 2})
    best, summary = tune_agent(X, y, WALK_FORWARD, block, agents)
    assert summary["n_trials"] == 4 and summary["worker_pids"] >= 1
    assert not (tmp_path / "unused.db").exists()  # SQLite has one writer: the journal instead
    journal = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    study = optuna.load_study(study_name="ai_trade_bot-gbm", storage=journal)
    assert len(study.trials) == 4 and study.best_params == best["best_params"]
    pids = {t.user_attrs["worker_pid"] for t in study.trials}
    assert os.getpid() not in pids  # the trials ran in loky's worker processes
    # the next run resumes the same study
    _, again = tune_agent(X, y, WALK_FORWARD, block, agents)
    assert again["n_trials"] == 8


def _optuna_storages(dask_scheduler) -> list[str]:
    extension = dask_scheduler.extensions.get("optuna")
    return list(extension.storages) if extension is not None else []


@pytest.mark.timeout(900)
def test_dask_tune_trials_share_one_study_through_the_scheduler(xy, tmp_path, dask_cluster):
    X, y = xy
    agents = {"gbm": {"params": AGENT_PARAMS["gbm"]}}
    block = _parallel_block(tmp_path, {"address": dask_cluster.scheduler_address})
    _, summary = tune_agent(X, y, WALK_FORWARD, block, agents)
    assert summary["n_trials"] == 4
    journal = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    study = optuna.load_study(study_name="ai_trade_bot-gbm", storage=journal)
    from distributed import Client

    with Client(dask_cluster.scheduler_address) as client:
        workers = set(client.run(os.getpid).values())
        on_scheduler = client.run_on_scheduler(_optuna_storages)
    assert any("ai_trade_bot-optuna-" in name for name in on_scheduler)  # Optuna's DaskStorage
    pids = {t.user_attrs["worker_pid"] for t in study.trials}
    assert pids and pids <= workers  # run by the Dask workers, stored through the scheduler
    assert summary["executor"]["address"] == dask_cluster.scheduler_address
