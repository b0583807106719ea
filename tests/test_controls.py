"""Controls for the whole machinery (see tests/controls.py).

Positive: candles with a planted, tradable edge go through the default pipelines; an agent
must beat the prior out of fold, the meta-agent select it, evaluate trade it with a deflated
Sharpe of at least 0.95, the gate make it champion and the runner paper-trade it.

Negative: the same bars shuffled show no edge and the gate refuses them; a feature that
leaks the next return is caught by the look-ahead check, and when it is slipped past that
check the gate's placebo refuses the model.

The gate with trained challengers: a weaker model (the planted edge learnt from partly
shuffled labels) becomes the first champion, the full planted edge is promoted over it, a
model trained on shuffled labels is kept as challenger, and rollback restores the first.
"""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from ai_trade_bot.live.config import RunnerConfig
from ai_trade_bot.live.feeds import ReplayFeed
from ai_trade_bot.live.model import ModelSource
from ai_trade_bot.live.runner import Runner
from ai_trade_bot.live.store import StateStore
from ai_trade_bot.registry.deploy import rollback
from tests.controls import (
    SYMBOL,
    ControlRun,
    next_return_leak,
    planted_candles,
    run_control,
    shuffled_bars,
)

pytestmark = pytest.mark.slow
NAME = "ai_trade_bot"


def _champion(uri: str) -> str:
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    return str(client.get_model_version_by_alias(NAME, "champion").version)


def _beats_prior(run: ControlRun) -> dict[str, bool]:
    return {
        name: bool(summary["baseline"]["beats_baseline"])
        for name, summary in run.out["train_summary"].items()
        if summary["baseline"].get("metric") == "log_loss"
    }


# -- positive control ----------------------------------------------------------------------
def test_positive_control_an_agent_beats_the_prior_and_the_meta_agent_selects_it(
    planted_run,
) -> None:
    beats = _beats_prior(planted_run)
    assert beats["gbm"], planted_run.out["train_summary"]["gbm"]["baseline"]
    selection = planted_run.evaluation["meta_selection"]
    # the meta-agent trades what beat the prior: LightGBM alone, or a combination with it
    assert selection["method"] != "prior"
    assert "gbm" in selection["method"] or not selection["method"].startswith("alone:")
    gbm = planted_run.out["train_summary"]["gbm"]["calibration"]
    kept = [not record["outputs_prior"] for record in gbm]
    # the edge survives calibration in most folds and in the deployed model
    assert sum(kept[:-1]) >= 3 and kept[-1], gbm


def test_positive_control_evaluate_trades_it_with_a_deflated_sharpe_of_at_least_095(
    planted_run,
) -> None:
    evaluation = planted_run.evaluation
    meta = evaluation["strategies"]["meta_agent"]
    assert meta["n_trades"] >= 10
    assert meta["sharpe"] > 2.0 and meta["total_return"] > 0
    assert evaluation["statistics"]["dsr"] >= 0.95
    assert evaluation["statistics"]["pbo"] <= 0.5


def test_positive_control_the_gate_makes_it_champion_and_the_runner_paper_trades_it(
    planted_run, registry, tmp_path
) -> None:
    report = planted_run.deploy()  # conf/base's gate, nothing lowered
    assert report["decision"] == "first_champion", report["reasons"]
    assert report["placebo"]["psr"] < 0.95
    store = StateStore(tmp_path / "state.db")
    feed = ReplayFeed(
        planted_run.out["ohlcv_clean"], symbol=SYMBOL, timeframe="1d", start=planted_run.test_start
    )
    runner = Runner(
        feed,
        store,
        ModelSource(f"models:/{NAME}@champion", registry),
        RunnerConfig(symbol=SYMBOL, timeframe="1d"),
    )
    runner.start()
    runner.run()
    assert runner.version == "1"
    fills = store.fills(SYMBOL)
    assert len(fills) >= 10
    equity = store.equity(SYMBOL)["equity"]
    assert equity.iloc[-1] > equity.iloc[0]
    decisions = store.decisions(SYMBOL, 5000)
    assert (decisions["model_version"] == "1").all()


# -- negative controls ---------------------------------------------------------------------
def test_negative_control_shuffled_bars_show_no_edge_and_the_gate_refuses(
    shuffled_run, registry
) -> None:
    evaluation = shuffled_run.evaluation
    assert evaluation["statistics"]["dsr"] < 0.95
    report = shuffled_run.deploy()
    assert report["decision"] == "no_champion", report["reasons"]
    assert not report["promoted"]


def test_negative_control_a_leak_slipped_past_the_lookahead_check_is_refused_by_the_gate(
    monkeypatch, registry, tmp_path
) -> None:
    """A feature that sees the next bar's return, put where the pipelines and the bundle
    build their features: the model "finds" an edge on candles that have none, and the
    gate's placebo (which runs the bundle, features and all, on shuffled bars) shows the
    same impossible edge, so the model is refused."""
    from ai_trade_bot.features import build as build_module
    from ai_trade_bot.pipelines.features import nodes as feature_nodes
    from ai_trade_bot.registry import bundle as bundle_module

    honest = build_module.build_features

    def leaky(ohlcv: pd.DataFrame, *args, **kwargs) -> pd.DataFrame:
        return honest(ohlcv, *args, **kwargs).assign(leak_next_return=next_return_leak(ohlcv))

    for module in (build_module, feature_nodes, bundle_module):
        monkeypatch.setattr(module, "build_features", leaky)
    run = run_control(tmp_path / "leak", shuffled_bars(planted_candles()))
    assert "leak_next_return" in run.out["deploy_bundle"].feature_columns
    # the leak makes a random walk look like a fortune ...
    assert run.evaluation["strategies"]["meta_agent"]["sharpe"] > 3.0
    report = run.deploy()
    # ... and the placebo, shuffled bars the leak still sees the future of, shows it
    assert report["decision"] == "no_champion", report["reasons"]
    placebo = [r for r in report["reasons"] if "the placebo shows an edge" in r]
    assert placebo and "something leaks" in placebo[0]
    assert report["placebo"]["direction_ci_low"] > report["placebo"]["direction_chance"] + 0.1


# -- the gate with trained challengers -----------------------------------------------------
def test_the_gate_promotes_a_better_trained_challenger_keeps_a_worse_one_and_rolls_back(
    planted_run, registry, tmp_path
) -> None:
    candles = planted_run.candles
    weaker = run_control(tmp_path / "weaker", candles, label_noise=0.3)
    first = weaker.deploy()
    assert first["decision"] == "first_champion", first["reasons"]

    better = planted_run.deploy()
    assert better["decision"] == "promoted", better["reasons"]
    assert better["challenger"]["sharpe"] > better["champion"]["sharpe"]
    assert better["challenger"]["log_loss"] < better["champion"]["log_loss"]
    assert _champion(registry) == "2"
    # the champion, loaded back from the registry, scores what it scored when it was judged
    for key in ("sharpe", "log_loss", "n_trades"):
        assert better["champion"][key] == first["challenger"][key], key

    worse = run_control(tmp_path / "worse", candles, label_noise=1.0)
    assert not any(_beats_prior(worse).values()), {
        k: v["baseline"] for k, v in worse.out["train_summary"].items()
    }
    kept = worse.deploy()
    assert kept["decision"] == "kept_champion", kept["reasons"]
    assert _champion(registry) == "2"
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "3"

    back = rollback(NAME, registry)
    assert (back["from"], back["to"]) == ("2", "1")
    assert _champion(registry) == "1"
